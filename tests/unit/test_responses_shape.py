"""The Responses API shape: the request translated into a chat request
(shapes/responses_input.py), and the normalised chunk stream rendered as Responses
events or folded into a Response (shapes/responses.py), checked against the openai
SDK's own types."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.responses import Response as SdkResponse
from openai.types.responses import ResponseStreamEvent as SdkEvent
from pydantic import TypeAdapter

from emd_proxy.chunks import ChunkNormalizer, CompletionBuilder
from emd_proxy.errors import InvalidRequestError, RateLimitError, UpstreamError
from emd_proxy.registry import Features
from emd_proxy.schemas.responses import Response, ResponsesRequest, ResponseStreamEvent
from emd_proxy.shapes.responses import Envelope, ResponseEvents, from_completion
from emd_proxy.shapes.responses_input import to_chat

MODEL = "Qwen3-8B/dev"
ALL = Features(tools=True, vision=True, reasoning=True)
TEXT_ONLY = Features()
TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}
SDK_EVENT = TypeAdapter(SdkEvent)


def request(**fields: Any) -> ResponsesRequest:
    return ResponsesRequest.model_validate({"model": MODEL, "input": "hi", **fields})


def chat(features: Features = ALL, **fields: Any) -> dict[str, Any]:
    return to_chat(request(**fields), features).model_dump(exclude_unset=True)


def refused(features: Features = ALL, **fields: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        to_chat(request(**fields), features)
    return info.value


# --- request -------------------------------------------------------------------------


def test_a_string_input_with_instructions() -> None:
    body = chat(instructions="Be brief", max_output_tokens=5, temperature=0.2, top_p=0.9)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (5, 0.2, 0.9)
    assert body["model"] == MODEL
    assert "max_output_tokens" not in body and "stream" not in body


def test_history_items_become_chat_messages() -> None:
    items = [
        {"role": "developer", "content": "Rules"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Go"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_1",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Calling", "annotations": []}],
        },
        {"type": "function_call", "call_id": "call_a", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "call_b", "name": "g", "arguments": '{"x":1}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "A"},
        {
            "type": "function_call_output",
            "call_id": "call_b",
            "output": [{"type": "input_text", "text": "B"}],
        },
    ]
    assert chat(input=items)["messages"] == [
        {"role": "developer", "content": "Rules"},
        {"role": "user", "content": [{"type": "text", "text": "Go"}]},
        {
            "role": "assistant",
            "content": "Calling",
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "g", "arguments": '{"x":1}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "A"},
        {"role": "tool", "tool_call_id": "call_b", "content": "B"},
    ]


def test_a_call_with_no_assistant_text_is_its_own_assistant_turn() -> None:
    items = [
        {"role": "user", "content": "hi"},
        {"type": "function_call", "call_id": "call_a", "name": "f", "arguments": "{}"},
    ]
    assistant = chat(input=items)["messages"][1]
    assert assistant["role"] == "assistant" and assistant["content"] is None
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_a"]


def test_images_by_url_and_refusals_by_field() -> None:
    image = {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"}
    body = chat(input=[{"role": "user", "content": [image]}])
    assert body["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}}
    ]
    assert refused(TEXT_ONLY, input=[{"role": "user", "content": [image]}]).param == (
        "input.0.content.0"
    )
    by_file = {"type": "input_image", "file_id": "file-1", "detail": "auto"}
    assert refused(input=[{"role": "user", "content": [by_file]}]).param == (
        "input.0.content.0.file_id"
    )
    a_file = {"type": "input_file", "file_data": "..."}
    assert refused(input=[{"role": "user", "content": [a_file]}]).param == (
        "input.0.content.0.type"
    )


def test_function_tools_become_chat_tools() -> None:
    body = chat(tools=[TOOL], tool_choice={"type": "function", "name": "get_weather"})
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather",
                "parameters": TOOL["parameters"],
                "strict": True,
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat(tools=[TOOL], tool_choice="required")["tool_choice"] == "required"
    assert chat(tools=[TOOL], parallel_tool_calls=False)["parallel_tool_calls"] is False


def test_no_tools_sends_neither_tools_nor_a_tool_choice() -> None:
    """The Agents SDK sends `tools: []` for an agent without tools; engines refuse an
    empty list, and a tool_choice without tools."""
    body = chat(tools=[], tool_choice="auto", parallel_tool_calls=True)
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & body.keys()
    assert refused(tool_choice="required").param == "tool_choice"


@pytest.mark.parametrize("kind", ["web_search", "file_search", "computer_use_preview", "mcp"])
def test_built_in_tools_are_refused_naming_the_type(kind: str) -> None:
    error = refused(tools=[TOOL, {"type": kind}])
    assert error.param == "tools.1.type"
    assert f"`{kind}`" in error.message


def test_tools_for_a_model_without_tools() -> None:
    assert refused(TEXT_ONLY, tools=[TOOL]).param == "tools"


def test_hosted_tool_choice_is_refused() -> None:
    assert refused(tools=[TOOL], tool_choice={"type": "web_search"}).param == "tool_choice.type"


def test_text_formats() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = {"type": "json_schema", "name": "A", "schema": schema, "strict": True}
    assert chat(text={"format": fmt})["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "A", "schema": schema, "strict": True},
    }
    assert chat(text={"format": {"type": "json_object"}})["response_format"] == {
        "type": "json_object"
    }
    assert "response_format" not in chat(text={"format": {"type": "text"}, "verbosity": "low"})
    assert refused(text={"format": {"type": "json_schema", "name": "A"}}).param == (
        "text.format.schema"
    )


def test_reasoning_effort_only_for_models_that_reason() -> None:
    assert chat(reasoning={"effort": "low"})["reasoning_effort"] == "low"
    assert refused(TEXT_ONLY, reasoning={"effort": "low"}).param == "reasoning.effort"
    assert chat(reasoning={"effort": "none"})["reasoning_effort"] == "none"
    assert "reasoning_effort" not in chat(TEXT_ONLY, reasoning={"effort": "none"})


def test_engine_extras_pass_and_responses_only_fields_do_not() -> None:
    body = chat(
        top_k=20,
        include=["reasoning.encrypted_content"],
        store=True,
        truncation="auto",
        context_management=[{"type": "compaction"}],
        prompt_cache_key="k",
        metadata={"a": "b"},
    )
    assert body["top_k"] == 20
    assert (
        not {
            "include",
            "store",
            "truncation",
            "context_management",
            "prompt_cache_key",
            "metadata",
        }
        & body.keys()
    )


def test_a_mistyped_chat_extra_is_a_400_naming_it() -> None:
    assert refused(n="two").param == "n"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": {"id": "conv_1"}}, "conversation"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"background": True}, "background"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input.0"),
    ],
)
def test_stored_state_is_refused(fields: dict[str, Any], param: str) -> None:
    error = refused(**fields)
    assert error.param == param
    assert "stateless" in error.message


@pytest.mark.parametrize(
    ("item", "param"),
    [
        ({"type": "computer_call", "call_id": "c"}, "input.1.type"),
        ({"content": "no role"}, "input.1.type"),
        ({"type": "function_call", "name": "f", "arguments": "{}"}, "input.1.call_id"),
        ({"role": "tool", "content": "x"}, "input.1.role"),
        ({"role": "user", "content": [{"type": "input_text"}]}, "input.1.content.0.text"),
    ],
)
def test_bad_items_are_a_400_naming_the_field(item: dict[str, Any], param: str) -> None:
    assert refused(input=[{"role": "user", "content": "hi"}, item]).param == param


def test_an_empty_input_is_refused() -> None:
    assert refused(input=[{"type": "reasoning", "id": "rs_1", "summary": []}]).param == "input"


# --- answers -------------------------------------------------------------------------

USAGE = {
    "prompt_tokens": 5,
    "completion_tokens": 9,
    "total_tokens": 14,
    "completion_tokens_details": {"reasoning_tokens": 3},
}


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def call(index: int, arguments: str, name: str | None = None) -> dict[str, Any]:
    function = {"arguments": arguments} | ({"name": name} if name else {})
    return {"tool_calls": [{"index": index, "function": function}]}


def normalised(*raw: dict[str, Any], usage: dict[str, Any] | None = USAGE) -> list[dict[str, Any]]:
    normalise = ChunkNormalizer(MODEL)
    chunks = [normalise(c) for c in raw]
    if usage:
        normalise.usage = usage
        chunks.append(normalise.usage_chunk())
    return chunks


def render(chunks: list[dict[str, Any]], envelope: Envelope) -> list[dict[str, Any]]:
    """The events the renderer writes, one batch per chunk, parsed back from SSE."""
    events = ResponseEvents(envelope)
    body = events.open() + b"".join(events.batch([c]) for c in chunks) + events.close()
    assert events.done() == b""
    return parse_sse(body)


def parse_sse(body: bytes) -> list[dict[str, Any]]:
    parsed = []
    for block in body.decode().split("\n\n")[:-1]:
        kind_line, data_line = block.split("\n")
        payload = json.loads(data_line.removeprefix("data: "))
        assert kind_line == f"event: {payload['type']}"
        SDK_EVENT.validate_python(payload)
        ResponseStreamEvent.model_validate(payload)
        parsed.append(payload)
    return parsed


def check(response: dict[str, Any]) -> SdkResponse:
    Response.model_validate(response)
    return SdkResponse.model_validate(response)


THINK_SAY_CALL = (
    chunk({"role": "assistant", "reasoning_content": "Hmm"}),
    chunk({"reasoning_content": " ok"}),
    chunk({"content": "Let me"}),
    chunk({"content": " check"}),
    chunk(call(0, '{"city"', "get_weather")),
    chunk(call(0, ': "Paris"}')),
    chunk({}, "tool_calls"),
)


def test_a_folded_completion_becomes_a_response() -> None:
    builder = CompletionBuilder()
    for c in normalised(*THINK_SAY_CALL):
        builder.add(c)
    envelope = Envelope.of(request(tools=[TOOL], metadata={"k": "v"}), MODEL)
    response = check(from_completion(builder.result(MODEL), envelope))
    assert [item.type for item in response.output] == ["reasoning", "message", "function_call"]
    reasoning, message, function_call = response.output
    assert reasoning.id.startswith("rs_") and reasoning.summary == []
    assert [c.text for c in reasoning.content or []] == ["Hmm ok"]
    assert message.id.startswith("msg_") and response.output_text == "Let me check"
    assert function_call.id.startswith("fc_") and function_call.call_id.startswith("call_")
    assert (function_call.name, function_call.arguments) == ("get_weather", '{"city": "Paris"}')
    assert response.status == "completed" and response.id.startswith("resp_")
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (5, 9)
    assert response.usage.output_tokens_details.reasoning_tokens == 3
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.metadata == {"k": "v"} and response.tools[0].name == "get_weather"
    assert response.parallel_tool_calls is True and response.tool_choice == "auto"


def test_the_stream_renders_every_item_in_order() -> None:
    envelope = Envelope.of(request(tools=[TOOL]), MODEL)
    events = render(normalised(*THINK_SAY_CALL), envelope)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["output"] == []
    final = check(events[-1]["response"])
    assert final.id == envelope.id == events[0]["response"]["id"]
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call"]
    assert final.output_text == "Let me check"
    assert final.usage is not None and final.usage.total_tokens == 14
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert done == events[-1]["response"]["output"]


def test_parallel_calls_may_interleave_and_close_in_order() -> None:
    events = render(
        normalised(
            chunk(call(0, '{"a":', "f")),
            chunk(call(1, '{"b":', "g")),
            chunk(call(0, "1}")),
            chunk(call(1, "2}"), "tool_calls"),
        ),
        Envelope.of(request(), MODEL),
    )
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [(e["output_index"], e["arguments"]) for e in done] == [(0, '{"a":1}'), (1, '{"b":2}')]
    final = check(events[-1]["response"])
    assert [item.name for item in final.output] == ["f", "g"]  # type: ignore[union-attr]


def test_a_cut_answer_is_incomplete_in_both_forms() -> None:
    chunks = normalised(chunk({"content": "The"}), chunk({"content": " weather"}, "length"))
    envelope = Envelope.of(request(max_output_tokens=2), MODEL)
    events = render(chunks, envelope)
    assert events[-1]["type"] == "response.incomplete"
    streamed = check(events[-1]["response"])
    builder = CompletionBuilder()
    for c in chunks:
        builder.add(c)
    folded = check(from_completion(builder.result(MODEL), envelope))
    for response in (streamed, folded):
        assert response.status == "incomplete"
        assert response.incomplete_details is not None
        assert response.incomplete_details.reason == "max_output_tokens"
        assert response.output[-1].status == "incomplete"  # type: ignore[union-attr]
        assert response.output_text == "The weather" and response.max_output_tokens == 2


def test_an_empty_answer_is_one_empty_message() -> None:
    events = render(normalised(chunk({}, "stop"), usage=None), Envelope.of(request(), MODEL))
    final = check(events[-1]["response"])
    assert final.output_text == "" and [i.type for i in final.output] == ["message"]
    assert final.usage is None


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (UpstreamError("GPU fell off the bus"), "server_error"),
        (RateLimitError("slow down"), "rate_limit_exceeded"),
    ],
)
def test_a_failure_after_the_start_is_response_failed(exc: Exception, code: str) -> None:
    events = ResponseEvents(Envelope.of(request(), MODEL))
    body = events.open() + events.batch(normalised(chunk({"content": "Half"}), usage=None))
    body += events.error(exc)  # type: ignore[arg-type]
    parsed = parse_sse(body)
    failed = parsed[-1]
    assert failed["type"] == "response.failed"
    response = check(failed["response"])
    assert response.status == "failed"
    assert response.error is not None and response.error.code == code
    assert response.error.message == str(exc)
    # What was said before the failure is in the output, cut.
    assert response.output_text == "Half" and response.output[0].status == "incomplete"  # type: ignore[union-attr]


def test_keepalive_is_an_sse_comment() -> None:
    assert ResponseEvents(Envelope.of(request(), MODEL)).keepalive == b": keep-alive\n\n"


def test_the_envelope_echoes_the_request_and_says_nothing_is_stored() -> None:
    response = Envelope.of(
        request(
            instructions="Be brief",
            store=True,
            temperature=0.5,
            text={"format": {"type": "json_object"}},
            reasoning={"effort": "low"},
            truncation="auto",
            user="u1",
        ),
        MODEL,
    ).response("in_progress", [])
    sdk = check(response)
    assert response["store"] is False
    assert (sdk.instructions, sdk.temperature, sdk.truncation, sdk.user) == (
        "Be brief",
        0.5,
        "auto",
        "u1",
    )
    assert sdk.text is not None and sdk.text.format is not None
    assert sdk.text.format.type == "json_object"
    assert sdk.reasoning is not None and sdk.reasoning.effort == "low"
    assert sdk.usage is None and sdk.completed_at is None
