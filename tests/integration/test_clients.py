"""Client libraries as users run them against the gateway, on every chat engine we
support (vLLM: the echo container; TGI and LMI: their wire-faithful fakes)."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from emd.local.gateway import LocalGateway

from .conftest import CHAT_ENGINES, KEY

MESSAGE = "The weather in Paris is sunny"


@pytest.fixture(params=CHAT_ENGINES)
def model(request: pytest.FixtureRequest) -> str:
    return request.param


def lc(gateway: LocalGateway, model: str, **kw: object) -> ChatOpenAI:
    return ChatOpenAI(
        model=model,
        base_url=gateway.base_url,
        api_key=KEY,
        max_retries=0,
        **kw,  # type: ignore[arg-type]
    )


def test_raw_response_gives_headers_and_the_parsed_completion(
    client: openai.OpenAI, model: str
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": MESSAGE}]
    )
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("application/json")
    completion = raw.parse()
    assert completion.choices[0].message.content == MESSAGE
    assert completion.model == model


def test_streaming_raw_response_ends_with_done(client: openai.OpenAI, model: str) -> None:
    with client.chat.completions.with_streaming_response.create(
        model=model, messages=[{"role": "user", "content": MESSAGE}], stream=True
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == MESSAGE


def test_async_stream_with_usage(gateway: LocalGateway, model: str) -> None:
    async def scenario() -> tuple[str, openai.types.CompletionUsage | None]:
        async with openai.AsyncOpenAI(
            base_url=gateway.base_url, api_key=KEY, max_retries=0
        ) as aclient:
            stream = await aclient.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": MESSAGE}],
                stream=True,
                stream_options={"include_usage": True},
            )
            text, usage = [], None
            async for chunk in stream:
                if chunk.choices:
                    text.append(chunk.choices[0].delta.content or "")
                else:
                    usage = chunk.usage
            return "".join(text), usage

    text, usage = asyncio.run(scenario())
    assert text == MESSAGE
    assert usage is not None
    assert usage.completion_tokens == len(MESSAGE.split())


def test_langchain_invoke_and_stream(gateway: LocalGateway, model: str) -> None:
    chat = lc(gateway, model)
    answer = chat.invoke([HumanMessage(MESSAGE)])
    assert answer.content == MESSAGE
    streamed = "".join(str(chunk.content) for chunk in chat.stream([HumanMessage(MESSAGE)]))
    assert streamed == MESSAGE


def test_max_completion_tokens_and_stop(client: openai.OpenAI, model: str) -> None:
    short = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": MESSAGE}], max_completion_tokens=2
    )
    assert short.choices[0].message.content == "The weather"
    assert short.choices[0].finish_reason == "length"
    stopped = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": MESSAGE}], stop=[" in"]
    )
    assert stopped.choices[0].message.content == "The weather"
    assert stopped.choices[0].finish_reason == "stop"


def test_developer_role_is_accepted(client: openai.OpenAI, model: str) -> None:
    answer = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": MESSAGE},
        ],
    )
    assert answer.choices[0].message.content == MESSAGE


class Weather(BaseModel):
    echo: str


def test_structured_output_parse(client: openai.OpenAI, model: str) -> None:
    parsed = client.chat.completions.parse(
        model=model,
        messages=[{"role": "user", "content": MESSAGE}],
        response_format=Weather,
    )
    assert parsed.choices[0].message.parsed == Weather(echo=MESSAGE)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_tool_calls_non_stream(client: openai.OpenAI, model: str) -> None:
    answer = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": MESSAGE}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="required",
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.id.startswith(("call_", "chatcmpl-tool-"))
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": MESSAGE}


def test_tool_calls_stream_with_indexes_from_zero(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": MESSAGE}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="required",
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            assert delta.index >= 0
            if delta.id:
                assert delta.index not in calls, "the id comes once, on the first fragment"
                calls[delta.index] = {"id": delta.id, "name": delta.function.name, "args": ""}
            calls[delta.index]["args"] += delta.function.arguments or ""
    assert sorted(calls) == list(range(len(calls))) == [0]
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["args"]) == {"city": MESSAGE}
    assert finish == "tool_calls"


def test_langchain_bind_tools_round_trip(gateway: LocalGateway, model: str) -> None:
    chat = lc(gateway, model).bind_tools([WEATHER_TOOL], tool_choice="get_weather")
    first = chat.invoke([HumanMessage(MESSAGE)])
    assert isinstance(first, AIMessage)
    [call] = first.tool_calls
    assert call["name"] == "get_weather"
    assert call["args"] == {"city": MESSAGE}
    streamed = None
    for chunk in chat.stream([HumanMessage(MESSAGE)]):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None
    assert streamed.tool_calls[0]["args"] == {"city": MESSAGE}
    plain = lc(gateway, model)
    final = plain.invoke(
        [HumanMessage(MESSAGE), first, ToolMessage("sunny, 24 C", tool_call_id=call["id"])]
    )
    assert "sunny, 24 C" in str(final.content)
