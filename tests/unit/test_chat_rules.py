"""schemas/chat_rules.py: vLLM's cross-field checks of a chat request, as 400s naming
the field (vllm/entrypoints/openai/chat_completion/protocol.py's model validators)."""

from __future__ import annotations

from typing import Any

import pytest

from emd_proxy.errors import InvalidRequestError
from emd_proxy.schemas.chat import ChatCompletionRequest

HI = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {}}}


def check(**extra: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": HI, **extra})


@pytest.mark.parametrize(
    ("extra", "param", "message"),
    [
        (
            {"tools": []},
            "tools",
            "`tools` must not be an empty array. Either provide at least one tool or omit "
            "the field entirely.",
        ),
        (
            {"tool_choice": "required"},
            "tool_choice",
            "When using `tool_choice`, `tools` must be set.",
        ),
        ({"tool_choice": "auto", "tools": None}, "tool_choice", "When using `tool_choice`"),
        (
            {"tool_choice": "any", "tools": [TOOL]},
            "tool_choice",
            'Invalid value for `tool_choice`: any! Only named tools, "none", "auto" or '
            '"required" are supported.',
        ),
        (
            {"tool_choice": {"type": "function", "name": "f"}, "tools": [TOOL]},
            "tool_choice.function",
            "Invalid value for `function`: `None` in `tool_choice`!",
        ),
        (
            {"tool_choice": {"type": "function", "function": {}}, "tools": [TOOL]},
            "tool_choice.function.name",
            "Expected field `name` in `function` in `tool_choice`!",
        ),
        (
            {"tool_choice": {"type": "function", "function": {"name": ""}}, "tools": [TOOL]},
            "tool_choice.function.name",
            "Invalid `name` in `function`: `` in `tool_choice`!",
        ),
        (
            {"tool_choice": {"type": "function", "function": {"name": "g"}}, "tools": [TOOL]},
            "tool_choice",
            "The tool specified in `tool_choice` does not match any of the specified `tools`",
        ),
        (
            {"top_logprobs": 1, "logprobs": False},
            "top_logprobs",
            "when using `top_logprobs`, `logprobs` must be set to true.",
        ),
        (
            {"stream_options": {"include_usage": False}},
            "stream_options",
            "Stream options can only be defined when `stream=True`.",
        ),
        (
            {"stream_options": {"include_usage": True}, "stream": False},
            "stream_options",
            "Stream options can only be defined",
        ),
    ],
)
def test_refused_with_vllms_words_and_the_param(extra, param, message) -> None:
    with pytest.raises(InvalidRequestError) as info:
        check(**extra)
    assert info.value.status == 400
    assert info.value.param == param
    assert info.value.message.startswith(message)


@pytest.mark.parametrize(
    "extra",
    [
        {"tool_choice": "none"},
        {"tool_choice": None},
        {"tool_choice": "none", "tools": None},
        {"tools": [TOOL]},
        {"tools": [TOOL], "tool_choice": "required"},
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "f"}}},
        {"top_logprobs": 0},
        {"top_logprobs": 3, "logprobs": True},
        {"stream_options": {}},
        {"stream_options": {"include_usage": True}, "stream": True},
    ],
)
def test_allowed_as_vllm_allows_it(extra) -> None:
    check(**extra)


def test_the_responses_and_messages_translations_get_the_same_rules() -> None:
    from emd_proxy.registry import Features
    from emd_proxy.schemas.messages import MessagesRequest
    from emd_proxy.schemas.responses import ResponsesRequest
    from emd_proxy.shapes.anthropic_request import to_chat_request
    from emd_proxy.shapes.responses_input import to_chat

    with pytest.raises(InvalidRequestError) as info:
        to_chat(
            ResponsesRequest.model_validate(
                {
                    "model": "m",
                    "input": "hi",
                    "tools": [{"type": "function", "name": "f", "parameters": {}}],
                    "tool_choice": {"type": "function", "name": "g"},
                }
            ),
            Features(tools=True),
        )
    assert info.value.param == "tool_choice"
    with pytest.raises(InvalidRequestError) as info:
        to_chat_request(
            MessagesRequest.model_validate(
                {
                    "model": "m",
                    "max_tokens": 5,
                    "messages": HI,
                    "tools": [{"name": "f", "input_schema": {"type": "object"}}],
                    "tool_choice": {"type": "tool", "name": "g"},
                }
            ),
            reasoning=False,
        )
    assert info.value.param == "tool_choice"
