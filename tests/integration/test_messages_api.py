"""Anthropic's Messages API (/v1/messages, /v1/messages/count_tokens) end to end with
the real `anthropic` SDK, on every chat engine's fake (vLLM, TGI 3.2+, TGI < 3.2,
LMI), and on the wire where the SDK hides it (event lines, pings, error shapes)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from emd.local.gateway import LocalGateway

from .conftest import CHAT_ENGINES, ECHO, KEY, LMI, SMOL, TGI, TGI_LEGACY, endpoint_of

MESSAGE = "The weather in Paris is sunny"
USER = [{"role": "user", "content": MESSAGE}]
WORDS = len(MESSAGE.split())
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CLOCK = {
    "name": "get_time",
    "input_schema": {
        "type": "object",
        "properties": {"zone": {"type": "string"}},
        "required": ["zone"],
    },
}
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
REASONS = [ECHO, LMI]  # the fakes whose registry entries say they can think


@pytest.fixture
def claude(gateway: LocalGateway) -> anthropic.Anthropic:
    # The SDK appends /v1/messages to its base URL: the gateway's root, without /v1.
    return anthropic.Anthropic(
        base_url=gateway.base_url.removesuffix("/v1"), api_key=KEY, max_retries=0
    )


@pytest.fixture
def raw(gateway: LocalGateway) -> Any:
    with httpx.Client(base_url=gateway.base_url, timeout=30) as http:
        yield http


def events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE event; every event has both lines."""
    out = []
    for block in filter(None, text.split("\n\n")):
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: "), block
        assert lines[1].startswith("data: "), block
        name, data = lines[0][7:], json.loads(lines[1][6:])
        assert data["type"] == name
        out.append((name, data))
    return out


# --- answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_create_answers_with_a_message(claude: anthropic.Anthropic, model: str) -> None:
    message = claude.messages.create(model=model, max_tokens=64, messages=USER)
    assert message.id.startswith("msg_") and message.type == "message"
    assert message.role == "assistant" and message.model == model
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", MESSAGE)]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert message.usage.input_tokens == WORDS
    assert message.usage.output_tokens == WORDS


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_stream_text_and_final_message(claude: anthropic.Anthropic, model: str) -> None:
    with claude.messages.stream(model=model, max_tokens=64, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == MESSAGE
    assert final.content[0].type == "text" and final.content[0].text == MESSAGE
    assert final.stop_reason == "end_turn" and final.model == model
    # message_start says 0 (not known yet); message_delta's totals replace it.
    assert (final.usage.input_tokens, final.usage.output_tokens) == (WORDS, WORDS)


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_the_event_sequence_on_the_wire(raw: httpx.Client, model: str) -> None:
    body = {"model": model, "max_tokens": 64, "messages": USER, "stream": True}
    response = raw.post("/messages", json=body, headers={"x-api-key": KEY})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    seen = events(response.text)
    names = [name for name, _ in seen]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert "[DONE]" not in response.text
    start = seen[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert seen[2][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert "".join(data["delta"]["text"] for _, data in seen[3:-3]) == MESSAGE
    assert seen[-2][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


def test_system_prompt_reaches_the_model(claude: anthropic.Anthropic) -> None:
    system = "You answer in one short sentence"
    plain = claude.messages.create(model=ECHO, max_tokens=64, messages=USER)
    with_system = claude.messages.create(model=ECHO, max_tokens=64, messages=USER, system=system)
    blocks = claude.messages.create(
        model=ECHO,
        max_tokens=64,
        messages=USER,
        system=[{"type": "text", "text": "You answer"}, {"type": "text", "text": "briefly"}],
    )
    # The echo model counts every word it was given, the system prompt's too.
    assert with_system.usage.input_tokens == plain.usage.input_tokens + len(system.split())
    assert blocks.usage.input_tokens == plain.usage.input_tokens + 3
    assert with_system.content[0].text == MESSAGE  # type: ignore[union-attr]


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_stop_sequences(claude: anthropic.Anthropic, model: str) -> None:
    message = claude.messages.create(
        model=model, max_tokens=64, messages=USER, stop_sequences=["Paris"]
    )
    assert message.content[0].text == "The weather in "  # type: ignore[union-attr]
    # vLLM and LMI say which stop matched; for TGI the gateway's stream fixer, which
    # cuts the stop from the text, says it.
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "Paris")
    with claude.messages.stream(
        model=model, max_tokens=64, messages=USER, stop_sequences=["Paris"]
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "The weather in "  # type: ignore[union-attr]
    assert (final.stop_reason, final.stop_sequence) == (message.stop_reason, message.stop_sequence)


@pytest.mark.parametrize("model", CHAT_ENGINES)
@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_stops_with_max_tokens(
    claude: anthropic.Anthropic, model: str, stream: bool
) -> None:
    if stream:
        with claude.messages.stream(model=model, max_tokens=2, messages=USER) as s:
            message = s.get_final_message()
    else:
        message = claude.messages.create(model=model, max_tokens=2, messages=USER)
    assert message.content[0].text == "The weather"  # type: ignore[union-attr]
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 2


@pytest.mark.parametrize("model", CHAT_ENGINES)
@pytest.mark.parametrize(
    "source",
    [
        {"type": "base64", "media_type": "image/png", "data": PNG},
        {"type": "url", "url": "https://example.com/cat.png"},
    ],
)
def test_images_reach_a_vision_model(
    claude: anthropic.Anthropic, model: str, source: dict[str, str]
) -> None:
    content = [{"type": "text", "text": "Describe"}, {"type": "image", "source": source}]
    message = claude.messages.create(
        model=model,
        max_tokens=64,
        messages=[{"role": "user", "content": content}],  # type: ignore[list-item]
    )
    assert message.content[0].text == "Describe [1 image]"  # type: ignore[union-attr]


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_a_request_shaped_like_claude_codes(raw: httpx.Client, model: str) -> None:
    """What Claude Code sends: `?beta=true`, beta headers, cache_control on blocks and
    tools, metadata, thinking, a JSON-Schema draft in input_schema, x-api-key."""
    cached = {"type": "ephemeral"}
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    body = {
        "model": model,
        "max_tokens": 256,
        "stream": True,
        "temperature": 1,
        "metadata": {"user_id": "user_abc_account__session_1"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": cached},
            {"type": "text", "text": "Be brief."},
        ],
        "tools": [{**WEATHER, "input_schema": schema, "cache_control": cached}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                    {"type": "text", "text": MESSAGE, "cache_control": cached},
                ],
            }
        ],
    }
    headers = {
        "x-api-key": KEY,
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    }
    response = raw.post("/messages", params={"beta": "true"}, json=body, headers=headers)
    assert response.status_code == 200, response.text
    seen = events(response.text)
    assert seen[-1][0] == "message_stop"
    calls = [d["content_block"] for n, d in seen if n == "content_block_start"]
    assert [c["name"] for c in calls if c["type"] == "tool_use"] == ["get_weather"]


def test_an_unknown_messages_route_is_an_anthropic_not_found(raw: httpx.Client) -> None:
    response = raw.post("/messages/batches", json={}, headers={"x-api-key": KEY})
    assert response.status_code == 404
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "not_found_error"


@pytest.mark.slow
def test_a_real_model_streams_a_message(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model=SMOL, max_tokens=20, messages=[{"role": "user", "content": "Say hello."}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.strip() and final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason in {"end_turn", "max_tokens"}
    assert final.usage.input_tokens > 0 and 0 < final.usage.output_tokens <= 20


# --- tools -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_tool_round_trip(claude: anthropic.Anthropic, model: str) -> None:
    asked = claude.messages.create(
        model=model,
        max_tokens=256,
        messages=USER,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "any"},
    )
    assert asked.stop_reason == "tool_use"
    (call,) = [b for b in asked.content if b.type == "tool_use"]
    assert call.id.startswith("toolu_")
    assert (call.name, call.input) == ("get_weather", {"city": MESSAGE})
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "18 degrees and sunny"}
    answered = claude.messages.create(
        model=model,
        max_tokens=256,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            *USER,
            asked.to_param(),
            {"role": "user", "content": [result]},
        ],  # type: ignore[list-item]
    )
    assert answered.stop_reason == "end_turn"
    assert answered.content[0].text == "Tool result: 18 degrees and sunny"  # type: ignore[union-attr]


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_streamed_tool_use_accumulates_its_input(claude: anthropic.Anthropic, model: str) -> None:
    with claude.messages.stream(
        model=model,
        max_tokens=256,
        messages=USER,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "get_weather"},
    ) as stream:
        final = stream.get_final_message()
    (call,) = [b for b in final.content if b.type == "tool_use"]
    assert (call.name, call.input) == ("get_weather", {"city": MESSAGE})
    assert call.id.startswith("toolu_")
    assert final.stop_reason == "tool_use"


def test_the_tool_stream_on_the_wire(raw: httpx.Client) -> None:
    body = {
        "model": ECHO,
        "max_tokens": 256,
        "messages": USER,
        "tools": [WEATHER, CLOCK],
        "tool_choice": {"type": "any"},
        "stream": True,
    }
    response = raw.post("/messages", json=body, headers={"x-api-key": KEY})
    seen = events(response.text)
    starts = [data for name, data in seen if name == "content_block_start"]
    assert [(s["index"], s["content_block"]["name"]) for s in starts] == [
        (0, "get_weather"),
        (1, "get_time"),
    ]
    for start in starts:
        block = start["content_block"]
        assert block["type"] == "tool_use" and block["input"] == {}
        partial = "".join(
            data["delta"]["partial_json"]
            for name, data in seen
            if name == "content_block_delta" and data["index"] == start["index"]
        )
        assert json.loads(partial) in ({"city": MESSAGE}, {"zone": MESSAGE})
    stops = [data["index"] for name, data in seen if name == "content_block_stop"]
    assert stops == [0, 1]
    assert seen[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_disable_parallel_tool_use_asks_for_one_call(claude: anthropic.Anthropic) -> None:
    def calls(choice: dict[str, Any]) -> list[str]:
        message = claude.messages.create(
            model=ECHO,
            max_tokens=256,
            messages=USER,
            tools=[WEATHER, CLOCK],  # type: ignore[list-item]
            tool_choice=choice,  # type: ignore[arg-type]
        )
        return [b.name for b in message.content if b.type == "tool_use"]

    assert calls({"type": "any"}) == ["get_weather", "get_time"]
    assert calls({"type": "any", "disable_parallel_tool_use": True}) == ["get_weather"]
    assert calls({"type": "tool", "name": "get_time"}) == ["get_time"]
    assert calls({"type": "none"}) == []


def test_an_error_tool_result_says_so(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=ECHO,
        max_tokens=256,
        messages=[
            *USER,
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "is_error": True,
                        "content": [{"type": "text", "text": "city unknown"}],
                    }
                ],
            },
        ],
    )
    assert message.content[0].text == "Tool result: Error: city unknown"  # type: ignore[union-attr]


# --- thinking --------------------------------------------------------------------------

THINKING = {"type": "enabled", "budget_tokens": 1024}
# The echo fakes think when asked with their own switch (a real Qwen3 takes the chat
# template's enable_thinking, which `thinking` sets; unit-tested).
ECHO_THINKS = {"echo_reasoning": True}


@pytest.mark.parametrize("model", REASONS)
def test_thinking_blocks_come_first(claude: anthropic.Anthropic, model: str) -> None:
    message = claude.messages.create(
        model=model, max_tokens=64, messages=USER, thinking=THINKING, extra_body=ECHO_THINKS
    )  # type: ignore[arg-type]
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == f"Thinking about: {MESSAGE}"  # type: ignore[union-attr]
    assert message.content[0].signature == ""  # type: ignore[union-attr]
    assert message.content[1].text == MESSAGE  # type: ignore[union-attr]
    with claude.messages.stream(
        model=model, max_tokens=64, messages=USER, thinking=THINKING, extra_body=ECHO_THINKS
    ) as stream:  # type: ignore[arg-type]
        thoughts = "".join(e.thinking for e in stream if e.type == "thinking")
        final = stream.get_final_message()
    assert thoughts == f"Thinking about: {MESSAGE}"
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[1].text == MESSAGE  # type: ignore[union-attr]


@pytest.mark.parametrize("model", [TGI, TGI_LEGACY])
def test_thinking_on_a_model_that_cannot_think_is_ignored(
    claude: anthropic.Anthropic, model: str
) -> None:
    message = claude.messages.create(
        model=model,
        max_tokens=64,
        messages=USER,
        thinking=THINKING,  # type: ignore[arg-type]
    )
    assert [b.type for b in message.content] == ["text"]


# --- count_tokens ------------------------------------------------------------------------


def test_count_tokens_is_an_estimate_over_system_messages_and_tools(
    claude: anthropic.Anthropic,
) -> None:
    bare = claude.messages.count_tokens(model=ECHO, messages=USER)  # type: ignore[arg-type]
    assert bare.input_tokens == -(-len(MESSAGE) // 4)  # about four characters a token
    more = claude.messages.count_tokens(
        model=ECHO,
        messages=USER,  # type: ignore[arg-type]
        system="Be brief",
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert more.input_tokens > bare.input_tokens + len(json.dumps(WEATHER)) // 4


def test_count_tokens_of_an_unknown_model_is_not_found(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        claude.messages.count_tokens(model="nope/none", messages=USER)  # type: ignore[arg-type]
    assert info.value.type == "not_found_error"


# --- errors and keys -------------------------------------------------------------------


def test_unknown_model_is_not_found(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        claude.messages.create(model="nope/none", max_tokens=8, messages=USER)
    assert info.value.status_code == 404
    assert info.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": info.value.api_message},
    }
    assert "nope/none" in (info.value.api_message or "")


def test_a_wrong_key_is_an_authentication_error(gateway: LocalGateway) -> None:
    wrong = anthropic.Anthropic(
        base_url=gateway.base_url.removesuffix("/v1"), api_key="sk-wrong", max_retries=0
    )
    with pytest.raises(anthropic.AuthenticationError) as info:
        wrong.messages.create(model=ECHO, max_tokens=8, messages=USER)
    assert info.value.type == "authentication_error"


def test_missing_max_tokens_is_a_bad_request(claude: anthropic.Anthropic) -> None:
    # The SDK's create() will not send it without max_tokens; its raw post will.
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.post(
            "/v1/messages",
            body={"model": ECHO, "messages": USER},
            cast_to=anthropic.types.Message,
        )
    assert info.value.type == "invalid_request_error"
    assert "max_tokens" in (info.value.api_message or "")


def test_an_unsupported_block_is_a_bad_request_naming_it(claude: anthropic.Anthropic) -> None:
    document = {"type": "document", "source": {"type": "text", "data": "x"}}
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(
            model=ECHO,
            max_tokens=8,
            messages=[{"role": "user", "content": [document]}],  # type: ignore[list-item]
        )
    assert "messages.0.content.0" in (info.value.api_message or "")


def test_throttling_is_a_rate_limit_error(
    gateway: LocalGateway, claude: anthropic.Anthropic
) -> None:
    gateway.stack.fault(endpoint_of(gateway, ECHO), "throttle", 1)
    with pytest.raises(anthropic.RateLimitError) as info:
        claude.messages.create(model=ECHO, max_tokens=8, messages=USER)
    assert info.value.type == "rate_limit_error"
    assert int(info.value.response.headers["retry-after"]) >= 1


def test_a_body_over_the_limit_is_request_too_large(raw: httpx.Client) -> None:
    # Refused by the middleware from Content-Length, before the route runs.
    body = {"model": ECHO, "max_tokens": 8, "messages": [{"role": "user", "content": "x" * 2**21}]}
    response = raw.post("/messages", json=body, headers={"x-api-key": KEY})
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"


def test_a_failure_mid_stream_is_an_error_event(
    gateway: LocalGateway, claude: anthropic.Anthropic
) -> None:
    gateway.stack.fault(endpoint_of(gateway, ECHO), "stream_error", 1, after=2, message="GPU gone")
    received = []
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        claude.messages.stream(model=ECHO, max_tokens=64, messages=USER) as stream,
    ):
        received.extend(stream.text_stream)
    assert info.value.body["type"] == "error"  # type: ignore[index]
    assert info.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    # SageMaker's text stays in the gateway's log; the client gets the request id.
    assert "GPU gone" not in info.value.body["error"]["message"]  # type: ignore[index]
    assert "(request req_" in info.value.body["error"]["message"]  # type: ignore[index]
    assert received, "the text before the failure reaches the client"


@pytest.mark.parametrize(
    "headers",
    [{"x-api-key": KEY}, {"Authorization": f"Bearer {KEY}"}],
    ids=["x-api-key", "bearer"],
)
def test_either_key_header_works(raw: httpx.Client, headers: dict[str, str]) -> None:
    body = {"model": ECHO, "max_tokens": 8, "messages": USER}
    headers = {**headers, "anthropic-version": "2023-06-01"}
    response = raw.post("/messages", json=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["content"][0]["text"] == MESSAGE


def test_key_errors_are_in_the_shape_of_the_route(raw: httpx.Client) -> None:
    body = {"model": ECHO, "max_tokens": 8, "messages": USER}
    anthropic_shaped = raw.post("/messages", json=body)
    assert anthropic_shaped.status_code == 401
    assert anthropic_shaped.json() == {
        "type": "error",
        "error": {
            "type": "authentication_error",
            "message": anthropic_shaped.json()["error"]["message"],
        },
    }
    # The OpenAI routes take Bearer keys only: x-api-key is Anthropic's header.
    openai_shaped = raw.post("/chat/completions", json=body, headers={"x-api-key": KEY})
    assert openai_shaped.status_code == 401
    assert openai_shaped.json()["error"]["code"] == "invalid_api_key"
