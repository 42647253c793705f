"""Structured output from LangChain on every chat engine fake, through the gateway:
`ChatOpenAI.with_structured_output(Model)` (its default, OpenAI's `json_schema`
response_format) and `method="json_mode"` (`json_object`). vLLM and LMI take both as
they are; TGI takes neither and gets its own grammar from the adapter (engines/tgi.py),
which its fakes now insist on."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from emd.local.gateway import LocalGateway

from .conftest import CHAT_ENGINES, KEY

MESSAGE = "The weather in Paris is sunny"


class Weather(BaseModel):
    """The weather somewhere."""

    report: str


class Echo(BaseModel):
    echo: str


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


@pytest.fixture
def llm(gateway: LocalGateway, model: str) -> ChatOpenAI:
    return lc(gateway, model)


def test_with_structured_output_json_schema(llm: ChatOpenAI) -> None:
    structured = llm.with_structured_output(Weather)
    assert structured.invoke(MESSAGE) == Weather(report=MESSAGE)
    raw = llm.with_structured_output(Weather, include_raw=True).invoke(MESSAGE)
    assert raw["parsing_error"] is None and raw["parsed"] == Weather(report=MESSAGE)


def test_with_structured_output_json_schema_async_stream(gateway: LocalGateway, model: str) -> None:
    async def last() -> object:
        # An async client of this loop's own (LangChain's shared one outlives loops).
        async with httpx.AsyncClient() as client:
            structured = lc(gateway, model, http_async_client=client)
            parsed = None
            async for parsed in structured.with_structured_output(Weather).astream(MESSAGE):  # noqa: B007
                pass
            return parsed

    assert asyncio.run(last()) == Weather(report=MESSAGE)


def test_with_structured_output_json_mode(llm: ChatOpenAI) -> None:
    structured = llm.with_structured_output(Echo, method="json_mode")
    assert structured.invoke(f"Answer in JSON. {MESSAGE}") == Echo(
        echo=f"Answer in JSON. {MESSAGE}"
    )
    streamed = list(llm.with_structured_output(Echo, method="json_mode").stream(MESSAGE))
    assert streamed[-1] == Echo(echo=MESSAGE)
