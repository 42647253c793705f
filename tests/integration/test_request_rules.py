"""Cross-field rules of the chat request (issue 15.3): the gateway answers them itself,
on every engine, as vLLM's own OpenAI server would (its wording, the `param`), because
vLLM's SageMaker route hides them behind "Cannot find suitable handler for request"
(emd/local/containers/echo.py answers so, as the real route does)."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from emd.local.gateway import LocalGateway

from .conftest import CHAT_ENGINES, endpoint_of

HI = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # (id, extra request fields, param, message start)
    ("empty-tools", {"tools": []}, "tools", "`tools` must not be an empty array."),
    (
        "tool-choice-without-tools",
        {"tool_choice": "auto"},
        "tool_choice",
        "When using `tool_choice`, `tools` must be set.",
    ),
    (
        "tool-choice-names-no-tool",
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        "tool_choice",
        "The tool specified in `tool_choice` does not match any of the specified `tools`",
    ),
    (
        "top-logprobs-without-logprobs",
        {"top_logprobs": 2},
        "top_logprobs",
        "when using `top_logprobs`, `logprobs` must be set to true.",
    ),
    (
        "stream-options-without-stream",
        {"stream_options": {"include_usage": True}},
        "stream_options",
        "Stream options can only be defined when `stream=True`.",
    ),
    ("n-zero", {"n": 0}, "n", "Invalid 'n': integer below minimum value."),
    ("n-too-many", {"n": 129}, "n", "Invalid 'n': integer above maximum value."),
]


@pytest.mark.parametrize("model", CHAT_ENGINES)
@pytest.mark.parametrize("case", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rules_are_400s_naming_the_field_on_every_engine(
    gateway: LocalGateway,
    client: openai.OpenAI,
    model: str,
    case: tuple[dict[str, Any], str, str],
) -> None:
    extra, param, message = case
    emulator = gateway.stack.emulator
    assert emulator is not None
    endpoint = endpoint_of(gateway, model)
    before = emulator.stats.by_endpoint.get(endpoint, 0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=HI, **extra)
    assert info.value.status_code == 400
    assert info.value.param == param
    body = info.value.body
    assert isinstance(body, dict)
    assert body["message"].startswith(message), body["message"]
    assert body["type"] == "invalid_request_error"
    # Refused before any engine saw it.
    assert emulator.stats.by_endpoint.get(endpoint, 0) == before


def test_the_rules_allow_what_vllm_allows(client: openai.OpenAI) -> None:
    model = CHAT_ENGINES[0]
    ok = client.chat.completions.create(model=model, messages=HI, tool_choice="none")
    assert ok.choices[0].message.content == "hi"
    ok = client.chat.completions.create(model=model, messages=HI, top_logprobs=0)
    assert ok.choices[0].message.content == "hi"
    named = {"type": "function", "function": {"name": "get_weather"}}
    called = client.chat.completions.create(
        model=model,
        messages=HI,
        tools=[TOOL],
        tool_choice=named,  # type: ignore[list-item,arg-type]
    )
    assert called.choices[0].message.tool_calls[0].function.name == "get_weather"  # type: ignore[index]
