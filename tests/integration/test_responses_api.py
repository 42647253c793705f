"""POST /v1/responses through the real openai SDK and the OpenAI Agents SDK, on each
chat engine fake: text, streams, function tools, structured output, reasoning, the
stateless refusals and a failure after the start."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest
from agents import (
    Agent,
    OpenAIResponsesModel,
    RawResponsesStreamEvent,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from pydantic import BaseModel

from emd.local.gateway import LocalGateway

from .conftest import CHAT_ENGINES, ECHO, KEY, LMI, SMOL, TGI, endpoint_of

MESSAGE = "The weather in Paris is sunny"
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
REASONING_ENGINES = [ECHO, LMI]  # the fakes with a reasoning parser (features.reasoning)


def event_types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_create_answers_text_with_usage(client: openai.OpenAI, model: str) -> None:
    response = client.responses.create(
        model=model, input=MESSAGE, instructions="Be brief", metadata={"run": "7"}
    )
    assert response.output_text == MESSAGE
    assert response.object == "response" and response.status == "completed"
    assert response.id.startswith("resp_") and response.model == model
    [message] = response.output
    assert message.type == "message" and message.id.startswith("msg_")
    assert message.status == "completed"
    assert response.usage is not None
    # The echo model counts words: 6 in the input plus 2 in the instructions.
    assert (response.usage.input_tokens, response.usage.output_tokens) == (8, 6)
    assert response.usage.total_tokens == 14
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert response.instructions == "Be brief" and response.metadata == {"run": "7"}
    assert response.model_extra["store"] is False  # type: ignore[index]


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_stream_events_in_order_with_sequence_numbers(client: openai.OpenAI, model: str) -> None:
    events = list(client.responses.create(model=model, input=MESSAGE, stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert event_types(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 6,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == MESSAGE
    completed = events[-1].response
    assert completed.output_text == MESSAGE and completed.usage.output_tokens == 6
    assert completed.id == events[0].response.id


@pytest.mark.slow
def test_a_real_model_streams_a_response(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(model=SMOL, input="Say hello.", max_output_tokens=20, stream=True)
    )
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert events[-1].type in {"response.completed", "response.incomplete"}
    final = events[-1].response
    assert text.strip() and final.output_text == text
    assert final.usage is not None and 0 < final.usage.output_tokens <= 20


def test_stream_helper_gives_the_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model=ECHO, input=MESSAGE) as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == final.output_text == MESSAGE


def _call_then_answer(
    client: openai.OpenAI, model: str, stream: bool
) -> tuple[list[str], openai.types.responses.Response]:
    """A function tool round trip: the model calls, the result goes back with the whole
    history (stateless), the model answers."""
    history: list[Any] = [{"role": "user", "content": MESSAGE}]
    if stream:
        events = list(
            client.responses.create(model=model, input=history, tools=[WEATHER_TOOL], stream=True)
        )
        first = events[-1].response
    else:
        events, first = (
            [],
            client.responses.create(model=model, input=history, tools=[WEATHER_TOOL]),
        )
    [call] = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert call.id.startswith("fc_") and call.call_id
    assert json.loads(call.arguments) == {"city": MESSAGE}
    history += [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "22 C"})
    answer = client.responses.create(model=model, input=history, tools=[WEATHER_TOOL])
    return event_types(events), answer


@pytest.mark.parametrize("model", CHAT_ENGINES)
@pytest.mark.parametrize("stream", [False, True])
def test_function_tool_round_trip(client: openai.OpenAI, model: str, stream: bool) -> None:
    types, answer = _call_then_answer(client, model, stream)
    assert answer.output_text == "Tool result: 22 C"
    if stream:
        deltas = types.count("response.function_call_arguments.delta")
        assert deltas >= 1
        assert types == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            *["response.function_call_arguments.delta"] * deltas,
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_structured_output_with_a_json_schema(client: openai.OpenAI, model: str) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "sunny": {"type": "boolean"}},
        "required": ["city", "sunny"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model=model,
        input=MESSAGE,
        text={"format": {"type": "json_schema", "name": "weather", "schema": schema}},
    )
    assert json.loads(response.output_text) == {"city": MESSAGE, "sunny": False}
    assert response.text is not None and response.text.format.type == "json_schema"


class Weather(BaseModel):
    city: str
    sunny: bool


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_parse_with_a_pydantic_model(client: openai.OpenAI, model: str) -> None:
    parsed = client.responses.parse(model=model, input=MESSAGE, text_format=Weather)
    assert parsed.output_parsed == Weather(city=MESSAGE, sunny=False)


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_max_output_tokens_leaves_the_response_incomplete(
    client: openai.OpenAI, model: str
) -> None:
    response = client.responses.create(model=model, input=MESSAGE, max_output_tokens=2)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "The weather"
    assert response.output[-1].status == "incomplete"
    events = list(
        client.responses.create(model=model, input=MESSAGE, max_output_tokens=2, stream=True)
    )
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.output_text == "The weather"


@pytest.mark.parametrize("model", REASONING_ENGINES)
def test_reasoning_comes_first_as_a_reasoning_item(client: openai.OpenAI, model: str) -> None:
    extra = {"echo_reasoning": True}  # the fakes' switch for "thinks first"
    response = client.responses.create(
        model=model, input=MESSAGE, reasoning={"effort": "low"}, extra_body=extra
    )
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    assert message.type == "message"
    assert reasoning.summary == []
    assert [c.text for c in reasoning.content or []] == [f"Thinking about: {MESSAGE}"]
    assert response.output_text == MESSAGE
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens > 0
    events = list(
        client.responses.create(model=model, input=MESSAGE, stream=True, extra_body=extra)
    )
    thought = [e.delta for e in events if e.type == "response.reasoning_text.delta"]
    assert "".join(thought) == f"Thinking about: {MESSAGE}"
    done = [e for e in events if e.type == "response.output_item.done"]
    assert [e.item.type for e in done] == ["reasoning", "message"]
    assert [e.output_index for e in done] == [0, 1]


def test_reasoning_effort_on_a_model_that_does_not_reason_is_a_400(
    client: openai.OpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=TGI, input=MESSAGE, reasoning={"effort": "high"})
    assert info.value.param == "reasoning.effort"


def test_image_input_reaches_a_vision_model(client: openai.OpenAI) -> None:
    content = [
        {"type": "input_text", "text": "Describe"},
        {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "auto"},
    ]
    response = client.responses.create(model=ECHO, input=[{"role": "user", "content": content}])
    assert response.output_text == "Describe [1 image]"


def test_image_by_file_id_is_a_400(client: openai.OpenAI) -> None:
    content = [{"type": "input_image", "file_id": "file-123", "detail": "auto"}]
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=ECHO, input=[{"role": "user", "content": content}])
    assert info.value.param == "input.0.content.0.file_id"


@pytest.mark.parametrize(
    ("tool", "kind"),
    [
        ({"type": "web_search"}, "web_search"),
        ({"type": "file_search", "vector_store_ids": ["vs_1"]}, "file_search"),
        ({"type": "code_interpreter", "container": {"type": "auto"}}, "code_interpreter"),
        ({"type": "mcp", "server_label": "x", "server_url": "https://x"}, "mcp"),
    ],
)
def test_built_in_tools_are_a_400_naming_the_type(
    client: openai.OpenAI, tool: dict[str, Any], kind: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=ECHO, input=MESSAGE, tools=[WEATHER_TOOL, tool])  # type: ignore[list-item]
    assert info.value.param == "tools.1.type"
    assert f"`{kind}`" in info.value.message


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"conversation": "conv_123"}, "conversation"),
        ({"background": True}, "background"),
    ],
)
def test_stored_state_is_refused_the_gateway_is_stateless(
    client: openai.OpenAI, kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=ECHO, input=MESSAGE, **kwargs)
    assert info.value.param == param
    assert "stateless" in info.value.message
    assert info.value.type == "invalid_request_error"


def test_retrieving_a_response_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.retrieve("resp_123")
    assert info.value.param == "response_id"
    assert "stateless" in info.value.message


def test_a_failure_after_the_start_is_response_failed(
    gateway: LocalGateway, http: httpx.Client
) -> None:
    gateway.stack.fault(endpoint_of(gateway, ECHO), "stream_error", 1, after=2)
    answer = http.post("/responses", json={"model": ECHO, "input": MESSAGE, "stream": True})
    assert answer.status_code == 200
    events = [e for e in answer.text.split("\n\n") if e]
    assert all(e.startswith("event: ") for e in events)
    last = json.loads(events[-1].split("\ndata: ", 1)[1])
    assert last["type"] == "response.failed"
    assert last["response"]["status"] == "failed"
    assert last["response"]["error"]["code"] == "server_error"
    assert last["sequence_number"] == len(events) - 1
    assert "[DONE]" not in answer.text


# --- the OpenAI Agents SDK -----------------------------------------------------------


def _agent(gateway: LocalGateway, model: str, cities: list[str]) -> Agent[Any]:
    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        cities.append(city)
        return f"Sunny in {city}"

    set_tracing_disabled(True)  # nothing goes to OpenAI's trace endpoint
    client = openai.AsyncOpenAI(base_url=gateway.base_url, api_key=KEY, max_retries=0)
    return Agent(
        name="Weather",
        instructions="Answer with the weather.",
        tools=[get_weather],
        model=OpenAIResponsesModel(model=model, openai_client=client),
    )


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_agents_sdk_run_with_a_tool(gateway: LocalGateway, model: str) -> None:
    cities: list[str] = []
    result = asyncio.run(Runner.run(_agent(gateway, model, cities), "Paris"))
    assert cities == ["Paris"]
    assert result.final_output == "Tool result: Sunny in Paris"
    assert result.context_wrapper.usage.requests == 2


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_agents_sdk_run_streamed_with_a_tool(gateway: LocalGateway, model: str) -> None:
    cities: list[str] = []

    async def scenario() -> tuple[Any, list[str]]:
        result = Runner.run_streamed(_agent(gateway, model, cities), "Paris")
        raw = [
            event.data.type
            async for event in result.stream_events()
            if isinstance(event, RawResponsesStreamEvent)
        ]
        return result.final_output, raw

    final_output, raw = asyncio.run(scenario())
    assert cities == ["Paris"]
    assert final_output == "Tool result: Sunny in Paris"
    assert raw.count("response.completed") == 2
    assert "response.function_call_arguments.delta" in raw
    assert "response.output_text.delta" in raw
