"""Anthropic's Messages API shape: the request translation into a chat request
(shapes/anthropic_request.py), the event renderer and the non-stream conversion
(shapes/anthropic.py) over real normalised chunks, and the error shape by path."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError

from emd_proxy.auth import KeyStore
from emd_proxy.chunks import ChunkNormalizer, StreamFixer
from emd_proxy.errors import (
    AuthenticationError,
    InternalError,
    InvalidRequestError,
    MethodNotAllowedError,
    ModelNotFoundError,
    ModelNotReadyError,
    ProxyError,
    RateLimitError,
    RequestTooLargeError,
    UpstreamError,
    UpstreamTimeoutError,
)
from emd_proxy.schemas.messages import (
    CountTokensRequest,
    Message,
    MessagesRequest,
    MessageStreamEvent,
)
from emd_proxy.shapes.anthropic import (
    PING,
    MessageEvents,
    error_body_for,
    stop_reason,
    to_message,
)
from emd_proxy.shapes.anthropic_request import estimate_input_tokens, to_chat_request
from emd_proxy.streaming import chat_chunks, fold, sse_body
from emd_proxy.vectors import estimate_tokens

MODEL = "Qwen3-8B/dev"
TOOL = {
    "name": "get_weather",
    "description": "The weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def request(**fields: Any) -> MessagesRequest:
    body = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}
    return MessagesRequest.model_validate(body | fields)


def chat(reasoning: bool = False, **fields: Any) -> dict[str, Any]:
    """The chat body the engine adapter will build from (what the client set)."""
    return to_chat_request(request(**fields), reasoning=reasoning).model_dump(exclude_unset=True)


# --- request translation ---------------------------------------------------------------


def test_a_plain_request() -> None:
    assert chat() == {
        "model": MODEL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Hi"}],
    }


def test_sampling_stop_and_stream_pass_metadata_and_anthropic_only_fields_do_not() -> None:
    body = chat(
        temperature=0.5,
        top_p=0.9,
        top_k=20,
        stop_sequences=["END", "\n\n"],
        stream=True,
        metadata={"user_id": "u1"},
        service_tier="auto",
        container="c",
        repetition_penalty=1.1,  # an engine extra, as on chat completions
    )
    assert body["temperature"] == 0.5 and body["top_p"] == 0.9 and body["top_k"] == 20
    assert body["stop"] == ["END", "\n\n"] and body["stream"] is True
    assert body["repetition_penalty"] == 1.1
    for dropped in ("metadata", "service_tier", "container", "stop_sequences"):
        assert dropped not in body


@pytest.mark.parametrize(
    ("system", "text"),
    [
        ("Be brief", "Be brief"),
        (
            [{"type": "text", "text": "Be brief"}, {"type": "text", "text": "Be kind"}],
            "Be brief\n\nBe kind",
        ),
    ],
)
def test_the_system_prompt_goes_first(system: Any, text: str) -> None:
    assert chat(system=system)["messages"][0] == {"role": "system", "content": text}


def test_text_and_image_blocks() -> None:
    content = [
        {"type": "text", "text": "What is"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
    ]
    texts = [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    messages = chat(
        messages=[{"role": "user", "content": content}, {"role": "user", "content": texts}]
    )["messages"]
    assert messages[0]["content"] == [
        {"type": "text", "text": "What is"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
    assert messages[1] == {"role": "user", "content": "one\ntwo"}  # text only: a string


def test_a_tool_round_trip() -> None:
    messages = chat(
        tools=[TOOL],
        messages=[
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": ""},
                    {"type": "text", "text": "Let me "},
                    {"type": "text", "text": "look."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "is_error": True,
                        "content": [{"type": "text", "text": "no city"}],
                    },
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
    )["messages"]
    assert messages[1:] == [
        {
            "role": "assistant",
            "content": "Let me look.",  # thinking dropped, text joined as generated
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no city"},
        {"role": "user", "content": "Thanks"},
    ]


def test_an_assistant_turn_of_tool_calls_only_has_no_content() -> None:
    turn = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
    }
    assert "content" not in chat(messages=[{"role": "user", "content": "x"}, turn])["messages"][1]


def test_images_in_a_tool_result_follow_as_the_users() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    result = {
        "type": "tool_result",
        "tool_use_id": "t",
        "content": [{"type": "text", "text": "shot"}, image],
    }
    messages = chat(messages=[{"role": "user", "content": [result]}])["messages"]
    assert messages == [
        {"role": "tool", "tool_call_id": "t", "content": "shot"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
        },
    ]


def test_a_block_in_the_wrong_role_is_a_400_naming_it() -> None:
    turn = {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}
    with pytest.raises(InvalidRequestError) as info:
        chat(messages=[turn])
    assert info.value.param == "messages.0.content.0"


def test_tools_become_functions() -> None:
    bare = {"name": "ping", "input_schema": {"type": "object"}}
    assert chat(tools=[TOOL, bare])["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": TOOL["input_schema"],
                "description": "The weather",
            },
        },
        {"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "get_weather"},
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        ),
        (
            {"type": "any", "disable_parallel_tool_use": True},
            {"tool_choice": "required", "parallel_tool_calls": False},
        ),
        ({"type": "auto", "disable_parallel_tool_use": False}, {"tool_choice": "auto"}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    body = chat(tools=[TOOL], tool_choice=choice)
    assert {k: body[k] for k in ("tool_choice", "parallel_tool_calls") if k in body} == expected


def test_tool_choice_without_tools() -> None:
    assert "tool_choice" not in chat(tool_choice={"type": "auto"})
    with pytest.raises(InvalidRequestError) as info:
        chat(tool_choice={"type": "any"})
    assert info.value.param == "tool_choice"


@pytest.mark.parametrize(
    ("tool", "param"),
    [
        ({"type": "web_search_20250305", "name": "web_search"}, "tools.0.type"),
        ({"name": "f"}, "tools.0"),
    ],
)
def test_server_tools_and_tools_without_a_schema_are_400(tool: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        chat(tools=[tool])
    assert info.value.param == param


@pytest.mark.parametrize(
    ("thinking", "reasoning", "expected"),
    [
        ({"type": "enabled", "budget_tokens": 2048}, True, {"enable_thinking": True}),
        ({"type": "adaptive"}, True, {"enable_thinking": True}),
        ({"type": "disabled"}, True, {"enable_thinking": False}),
        ({"type": "enabled", "budget_tokens": 2048}, False, None),  # the model cannot think
        (None, True, None),  # the model's own default
    ],
)
def test_thinking_switches_the_chat_template(
    thinking: dict[str, Any] | None, reasoning: bool, expected: dict[str, Any] | None
) -> None:
    fields = {"thinking": thinking} if thinking else {}
    assert chat(reasoning, **fields).get("chat_template_kwargs") == expected


def test_an_explicit_chat_template_switch_wins() -> None:
    body = chat(
        True,
        thinking={"type": "enabled", "budget_tokens": 2048},
        chat_template_kwargs={"enable_thinking": False, "x": 1},
    )
    assert body["chat_template_kwargs"] == {"enable_thinking": False, "x": 1}


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"max_tokens": None}, "max_tokens"),
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "messages",
        ),
        ({"tool_choice": {"type": "tool"}}, "tool_choice"),
        ({"temperature": 1.5}, "temperature"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}
                ]
            },
            "messages",
        ),
    ],
)
def test_the_schema_refuses_what_anthropic_refuses(fields: dict[str, Any], loc: str) -> None:
    body = {
        "model": MODEL,
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "x"}],
    } | fields
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(ValidationError) as info:
        MessagesRequest.model_validate(body)
    assert info.value.errors()[0]["loc"][0] == loc


def test_count_tokens_estimates_over_system_messages_and_tools() -> None:
    req = CountTokensRequest.model_validate(
        {
            "model": MODEL,
            "system": "Be brief",
            "tools": [TOOL],
            "messages": [
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t", "content": "sunny"}],
                },
            ],
        }
    )
    texts = ["Be brief", "Weather?", 'f{"a": 1}', "sunny", json.dumps(TOOL)]
    assert estimate_input_tokens(req) == estimate_tokens("\n".join(texts))


# --- the stream: raw engine chunks -> the pipeline -> Anthropic events ----------------


def engine_chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, **choice: Any
) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "served",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish, **choice}],
    }


USAGE = {
    "id": "c",
    "choices": [],
    "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
}


async def parts(
    *chunks: dict[str, Any], fail: ProxyError | None = None
) -> AsyncIterator[bytes | None]:
    for chunk in chunks:
        yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
    if fail is not None:
        raise fail
    yield b"data: [DONE]\n\n"


def render(
    *chunks: dict[str, Any], stops: list[str] | None = None, fail: ProxyError | None = None
) -> bytes:
    async def run() -> bytes:
        batches = chat_chunks(parts(*chunks, fail=fail), StreamFixer(), ChunkNormalizer(MODEL))
        return b"".join([w async for w in sse_body(batches, MessageEvents(MODEL, stops or []))])

    return asyncio.run(run())


def parse(wire: bytes) -> list[dict[str, Any]]:
    """Each event's data, checked against the answer models and its `event:` line."""
    out = []
    for block in filter(None, wire.decode().split("\n\n")):
        name_line, data_line = block.split("\n")
        data = json.loads(data_line.removeprefix("data: "))
        assert name_line == f"event: {data['type']}"
        MessageStreamEvent.model_validate(data)
        out.append(data)
    return out


def shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The sequence in short: (type, index, block type or delta type/value)."""
    out: list[tuple[Any, ...]] = []
    for e in events:
        if e["type"] == "content_block_start":
            out.append(("start", e["index"], e["content_block"]["type"]))
        elif e["type"] == "content_block_delta":
            delta = e["delta"]
            value = next(v for k, v in delta.items() if k != "type")
            out.append(("delta", e["index"], delta["type"], value))
        elif e["type"] == "content_block_stop":
            out.append(("stop", e["index"]))
        else:
            out.append((e["type"],))
    return out


def test_a_text_stream() -> None:
    events = parse(
        render(
            engine_chunk({"role": "assistant", "content": ""}),
            engine_chunk({"content": "Hel"}),
            engine_chunk({"content": "lo"}),
            engine_chunk(finish="stop"),
            USAGE,
        )
    )
    assert shape(events) == [
        ("message_start",),
        ("ping",),
        ("start", 0, "text"),
        ("delta", 0, "text_delta", "Hel"),
        ("delta", 0, "text_delta", "lo"),
        ("stop", 0),
        ("message_delta",),
        ("message_stop",),
    ]
    start = events[0]["message"]
    assert start["model"] == MODEL and start["id"].startswith("msg_")
    assert start["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert events[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[-2]["usage"] == {"input_tokens": 7, "output_tokens": 3}


def test_thinking_text_and_two_tool_calls_are_blocks_in_order() -> None:
    def call(index: int, name: str | None, arguments: str) -> dict[str, Any]:
        fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
        if name:
            fragment |= {"id": f"chatcmpl-tool-{index}abc", "type": "function"}
            fragment["function"]["name"] = name
        return {"tool_calls": [fragment]}

    events = parse(
        render(
            engine_chunk({"role": "assistant", "reasoning": "Let me"}),
            engine_chunk({"reasoning": " see"}),
            engine_chunk({"content": "Checking."}),
            engine_chunk(call(0, "get_weather", "")),
            engine_chunk(call(0, None, '{"city": ')),
            engine_chunk(call(0, None, '"Paris"}')),
            engine_chunk(call(1, "get_time", '{"zone": "CET"}')),
            engine_chunk(finish="tool_calls"),
            USAGE,
        )
    )
    assert shape(events) == [
        ("message_start",),
        ("ping",),
        ("start", 0, "thinking"),
        ("delta", 0, "thinking_delta", "Let me"),
        ("delta", 0, "thinking_delta", " see"),
        ("delta", 0, "signature_delta", ""),
        ("stop", 0),
        ("start", 1, "text"),
        ("delta", 1, "text_delta", "Checking."),
        ("stop", 1),
        ("start", 2, "tool_use"),
        ("delta", 2, "input_json_delta", '{"city": '),
        ("delta", 2, "input_json_delta", '"Paris"}'),
        ("stop", 2),
        ("start", 3, "tool_use"),
        ("delta", 3, "input_json_delta", '{"zone": "CET"}'),
        ("stop", 3),
        ("message_delta",),
        ("message_stop",),
    ]
    tools = [e["content_block"] for e in events if e["type"] == "content_block_start"][2:]
    assert [(t["name"], t["input"]) for t in tools] == [("get_weather", {}), ("get_time", {})]
    assert all(t["id"].startswith("toolu_") for t in tools)
    assert tools[0]["id"] != tools[1]["id"]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_a_matched_stop_sequence_is_named() -> None:
    events = parse(
        render(
            engine_chunk({"content": "The weather in "}),
            engine_chunk(finish="stop", stop_reason="Paris"),
            USAGE,
            stops=["Paris"],
        )
    )
    assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "Paris"}


def test_keepalives_are_pings() -> None:
    async def run() -> bytes:
        async def items() -> AsyncIterator[list[dict[str, Any]] | None]:
            yield None
            yield [ChunkNormalizer(MODEL)(engine_chunk({"content": "x"}))]

        return b"".join([w async for w in sse_body(items(), MessageEvents(MODEL))])

    wire = run_sync(run())
    assert [e["type"] for e in parse(wire)][:3] == ["message_start", "ping", "ping"]
    assert MessageEvents(MODEL).keepalive == PING == b'event: ping\ndata: {"type":"ping"}\n\n'


def run_sync(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_a_failure_after_the_start_is_one_error_event_and_nothing_after() -> None:
    wire = render(engine_chunk({"content": "Hel"}), fail=UpstreamError("GPU gone"))
    events = parse(wire)
    assert [e["type"] for e in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "error",
    ]
    assert events[-1] == {"type": "error", "error": {"type": "api_error", "message": "GPU gone"}}
    assert b"[DONE]" not in wire


@pytest.mark.parametrize(
    ("finish", "matched", "expected"),
    [
        ("stop", None, ("end_turn", None)),
        (None, None, ("end_turn", None)),
        ("length", None, ("max_tokens", None)),
        ("tool_calls", None, ("tool_use", None)),
        ("content_filter", None, ("refusal", None)),
        ("stop", "END", ("stop_sequence", "END")),
        ("stop", 151645, ("end_turn", None)),  # a stop token id, not one of the client's
        ("stop", "other", ("end_turn", None)),
        ("length", "END", ("max_tokens", None)),
    ],
)
def test_stop_reasons(finish: str | None, matched: Any, expected: tuple[str, str | None]) -> None:
    assert stop_reason(finish, matched, ["END"]) == expected


def test_a_call_of_a_named_tool_is_tool_use_though_vllm_finishes_it_stop() -> None:
    assert stop_reason("stop", None, [], called=True) == ("tool_use", None)


# --- non-stream: the folded completion -> message -------------------------------------


def folded(*chunks: dict[str, Any]) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        batches = chat_chunks(parts(*chunks), StreamFixer(), ChunkNormalizer(MODEL))
        return (await fold(batches)).result(MODEL)

    return asyncio.run(run())


def test_a_folded_answer_with_thinking_text_and_a_tool_call() -> None:
    completion = folded(
        engine_chunk({"role": "assistant", "reasoning": "Hmm"}),
        engine_chunk({"content": "Checking."}),
        engine_chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_abcdef",
                        "function": {"name": "f", "arguments": '{"a": '},
                    }
                ]
            }
        ),
        engine_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        engine_chunk(
            {
                "tool_calls": [
                    {"index": 1, "id": "call_ghijkl", "function": {"name": "g", "arguments": ""}}
                ]
            }
        ),
        engine_chunk(finish="tool_calls"),
        USAGE,
    )
    message = to_message(completion)
    Message.model_validate(message)
    assert message["id"].startswith("msg_") and message["model"] == MODEL
    assert [
        (b["type"], b.get("thinking") or b.get("text") or b.get("input"))
        for b in message["content"]
    ] == [
        ("thinking", "Hmm"),
        ("text", "Checking."),
        ("tool_use", {"a": 1}),
        ("tool_use", {}),  # no arguments: an empty input
    ]
    assert message["content"][0]["signature"] == ""
    assert [b["id"][:6] for b in message["content"][2:]] == ["toolu_", "toolu_"]
    assert (message["stop_reason"], message["stop_sequence"]) == ("tool_use", None)
    assert message["usage"] == {"input_tokens": 7, "output_tokens": 3}


def test_the_fold_keeps_the_matched_stop() -> None:
    completion = folded(
        engine_chunk({"content": "The weather in "}),
        engine_chunk(finish="stop", stop_reason="Paris"),
    )
    assert completion["choices"][0]["stop_reason"] == "Paris"
    message = to_message(completion, stop_sequences=["Paris"])
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "Paris")
    assert message["content"] == [{"type": "text", "text": "The weather in "}]
    assert message["usage"] == {"input_tokens": 0, "output_tokens": 0}  # none reported


def test_tool_arguments_that_are_not_an_object_are_the_models_failure() -> None:
    completion = folded(
        engine_chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "call_abcdef", "function": {"name": "f", "arguments": "[1]"}}
                ]
            }
        )
    )
    with pytest.raises(UpstreamError):
        to_message(completion)


# --- errors and keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (InvalidRequestError("x"), "invalid_request_error"),
        (AuthenticationError("x"), "authentication_error"),
        (ModelNotFoundError("x"), "not_found_error"),
        (MethodNotAllowedError("x"), "invalid_request_error"),
        (RequestTooLargeError("x"), "request_too_large"),
        (RateLimitError("x"), "rate_limit_error"),
        (InternalError("x"), "api_error"),
        (UpstreamError("x"), "api_error"),
        (ModelNotReadyError("x"), "overloaded_error"),
        (UpstreamTimeoutError("x"), "timeout_error"),
    ],
)
def test_every_error_has_anthropics_type_on_messages_paths(exc: ProxyError, kind: str) -> None:
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        assert error_body_for(path, exc) == {
            "type": "error",
            "error": {"type": kind, "message": "x"},
        }


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messagesx", "/v1/models", "/health"])
def test_other_paths_keep_openais_shape(path: str) -> None:
    exc = ModelNotFoundError("x")
    assert error_body_for(path, exc) == exc.body()


def test_the_key_may_come_as_x_api_key() -> None:
    store = KeyStore.static({"default": "sk-a", "other": "sk-b"})
    assert store.authenticate(None, "sk-a").name == "default"
    assert store.authenticate("Bearer sk-b", "sk-a").name == "other"  # Bearer first
    assert store.authenticate("Basic abc", "sk-b").name == "other"
    for missing in ("", "  ", None):
        with pytest.raises(AuthenticationError, match="Missing API key"):
            store.authenticate(None, missing)
    with pytest.raises(AuthenticationError, match="Incorrect"):
        store.authenticate(None, "sk-c")
