"""What the engine says reaches the client as it said it (issue 15.4): its finish
reason, running usage when asked, its system fingerprint on every chunk, and sampling
values the engine takes beyond OpenAI's bounds."""

from __future__ import annotations

import openai
import pytest

from .conftest import CHAT_ENGINES, ECHO, LMI, TGI, TGI_LEGACY, WEATHER_TOOL

HI = [{"role": "user", "content": "The weather in Paris is sunny"}]
TOOL = WEATHER_TOOL
NAMED = {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.parametrize("model", [ECHO, LMI])
@pytest.mark.parametrize("stream", [False, True])
def test_a_named_tool_call_finishes_as_vllm_says(
    client: openai.OpenAI, model: str, stream: bool
) -> None:
    """vLLM (like OpenAI) finishes a forced call of a named tool with `stop`."""
    kw = {"model": model, "messages": HI, "tools": [TOOL], "tool_choice": NAMED}
    if stream:
        chunks = list(client.chat.completions.create(**kw, stream=True))  # type: ignore[call-overload]
        reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
        assert reasons[-1] == "stop"
    else:
        completion = client.chat.completions.create(**kw)  # type: ignore[call-overload]
        assert completion.choices[0].finish_reason == "stop"
        assert completion.choices[0].message.tool_calls


def test_continuous_usage_is_on_every_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=ECHO,
            messages=HI,
            stream=True,
            stream_options={"include_usage": True, "continuous_usage_stats": True},  # type: ignore[typeddict-unknown-key]
        )
    )
    with_choices = [c for c in chunks if c.choices]
    assert all(c.usage is not None for c in with_choices)
    counts = [c.usage.completion_tokens for c in with_choices if c.usage]
    assert counts == sorted(counts) and counts[-1] > counts[0]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_without_include_usage_there_is_no_running_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=ECHO,
            messages=HI,
            stream=True,
            stream_options={"continuous_usage_stats": True},  # type: ignore[typeddict-unknown-key]
        )
    )
    assert all(c.usage is None and c.choices for c in chunks)


@pytest.mark.parametrize("model", [TGI, TGI_LEGACY])
def test_the_engines_fingerprint_is_on_every_chunk(client: openai.OpenAI, model: str) -> None:
    chunks = list(
        client.chat.completions.create(
            model=model, messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    fingerprints = {c.system_fingerprint for c in chunks}
    assert len(fingerprints) == 1 and None not in fingerprints


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_a_temperature_above_two_reaches_the_engine(client: openai.OpenAI, model: str) -> None:
    completion = client.chat.completions.create(model=model, messages=HI, temperature=2.5)
    assert completion.choices[0].message.content


@pytest.mark.parametrize("model", [ECHO, LMI])
def test_top_logprobs_beyond_the_engines_limit_is_its_400(
    client: openai.OpenAI, model: str
) -> None:
    """vLLM's max_logprobs (20 by default): -1 (every token) and 25 are refused with
    vLLM's own message, naming the param."""
    for top in (-1, 25):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(
                model=model, messages=HI, logprobs=True, top_logprobs=top, max_tokens=5
            )
        assert "which is greater than max allowed: 20" in info.value.message


@pytest.mark.parametrize("model", [TGI, TGI_LEGACY])
def test_top_logprobs_tgi_cannot_give_are_a_400(client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=model, messages=HI, logprobs=True, top_logprobs=-1, max_tokens=5
        )
    assert info.value.param == "top_logprobs"
    # Above its --max-top-n-tokens, TGI's own reason.
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=model, messages=HI, logprobs=True, top_logprobs=25, max_tokens=5
        )
    assert "`top_n_tokens` must be >= 0 and <= 5. Given: 25" in info.value.message
