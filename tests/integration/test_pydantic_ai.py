"""pydantic-ai agents against the gateway, as its docs tell users to reach an
OpenAI-compatible service (`OpenAICompatibleProvider`): a tool round trip on chat
completions, streamed and not, and on the Responses API, on every chat engine."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.messages import ToolCallPart, ToolReturnPart
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider

from emd.local.gateway import LocalGateway

from .conftest import CHAT_ENGINES, KEY


class City(BaseModel):
    city: str


def _agent(gateway: LocalGateway, model: Any, cities: list[str]) -> Agent[None, str]:
    agent: Agent[None, str] = Agent(model, instructions="Answer with the weather.")

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        cities.append(city)
        return f"Sunny in {city}"

    return agent


def _provider(gateway: LocalGateway) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider("emd", base_url=gateway.base_url, api_key=KEY)


def _tool_round_trip(messages: list[Any]) -> tuple[list[str], list[str]]:
    """The tool calls and tool returns the run went through, by tool name."""
    calls = [p.tool_name for m in messages for p in m.parts if isinstance(p, ToolCallPart)]
    returns = [p.tool_name for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
    return calls, returns


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_chat_model_runs_a_tool(gateway: LocalGateway, model: str) -> None:
    cities: list[str] = []
    agent = _agent(gateway, OpenAIChatModel(model, provider=_provider(gateway)), cities)
    result = agent.run_sync("Paris")
    assert cities == ["Paris"]
    assert result.output == "Tool result: Sunny in Paris"
    assert _tool_round_trip(result.all_messages()) == (["get_weather"], ["get_weather"])
    usage = result.usage
    assert usage.requests == 2
    assert usage.input_tokens > 0 and usage.output_tokens > 0


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_chat_model_streams_after_a_tool(gateway: LocalGateway, model: str) -> None:
    cities: list[str] = []
    agent = _agent(gateway, OpenAIChatModel(model, provider=_provider(gateway)), cities)

    async def scenario() -> tuple[list[str], str]:
        async with agent.run_stream("Paris") as run:
            deltas = [delta async for delta in run.stream_text(delta=True, debounce_by=None)]
            return deltas, await run.get_output()

    deltas, output = asyncio.run(scenario())
    assert cities == ["Paris"]
    assert output == "Tool result: Sunny in Paris"
    assert len(deltas) > 1  # streamed word by word, not in one piece
    assert "".join(deltas) == output


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_responses_model_runs_a_tool(gateway: LocalGateway, model: str) -> None:
    cities: list[str] = []
    agent = _agent(gateway, OpenAIResponsesModel(model, provider=_provider(gateway)), cities)
    result = agent.run_sync("Paris")
    assert cities == ["Paris"]
    assert result.output == "Tool result: Sunny in Paris"
    assert _tool_round_trip(result.all_messages()) == (["get_weather"], ["get_weather"])


def test_structured_output_through_a_tool_call(gateway: LocalGateway) -> None:
    """pydantic-ai's default structured output is a `final_result` tool call; the echo
    model fills each required string with the message."""

    agent: Agent[None, City] = Agent(
        OpenAIChatModel("echo/local", provider=_provider(gateway)), output_type=City
    )
    result = agent.run_sync("Paris")
    assert result.output == City(city="Paris")
    calls, _ = _tool_round_trip(result.all_messages())
    assert calls == ["final_result"]
