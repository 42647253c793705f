"""A prompt longer than the model's context, on every chat engine (the fakes answer in
their real container's words; SmolLM2 is llama.cpp behind the vLLM contract): a 400
`context_length_exceeded` with the limit and the prompt's size, streamed or not."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from .conftest import CHAT_ENGINES, SMOL, TGI, TGI_LEGACY

# One word is one token on the fakes (8192 positions on the vLLM and LMI fakes, TGI's
# max_total_tokens 4096); SmolLM2 runs with a 4096-token context.
LONG = "word " * 9000
CASES: dict[str, dict[str, Any]] = {model: {} for model in CHAT_ENGINES}
# TGI's fake checks `inputs` + `max_new_tokens` when max_tokens is given.
CASES[TGI] = CASES[TGI_LEGACY] = {"max_tokens": 10}
CASES[SMOL] = {"max_tokens": 5}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("model", [*CHAT_ENGINES, SMOL])
def test_context_overflow_is_a_400_the_caller_can_act_on(
    client: openai.OpenAI, model: str, stream: bool
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        answer = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": LONG}],
            stream=stream,
            **CASES[model],
        )
        if stream:
            list(answer)  # type: ignore[arg-type]
    error = info.value
    assert error.status_code == 400
    assert error.code == "context_length_exceeded"
    body = error.body
    assert isinstance(body, dict)
    message = body["message"]
    assert message.startswith("This model's maximum context length is "), message
    assert "your prompt has " in message
    assert "try increasing" not in message
    assert "Shorten the messages" in message
