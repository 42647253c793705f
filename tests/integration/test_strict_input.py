"""Strict types, the engines' integer bounds, content parts a model cannot read and
`dimensions` past the vector size (issue 17.6), against the real local gateway: each is
a 400 naming the field, and the emulator saw no call (GET /_emulator/stats)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from emd.local.gateway import LocalGateway

from .conftest import E5, E5_MATRYOSHKA, ECHO, KEY, SMOL, TGI

HI = [{"role": "user", "content": "hi"}]


def upstream_calls(gateway: LocalGateway) -> int:
    """The emulator's invocation count, as any client of it reads it."""
    stats = httpx.get(f"{gateway.stack.emulator_url}/_emulator/stats", timeout=10).json()
    return int(stats["invocations"])


@pytest.fixture
def no_upstream_call(gateway: LocalGateway) -> Iterator[None]:
    before = upstream_calls(gateway)
    yield
    assert upstream_calls(gateway) == before, "the request reached the engine"


def body_of(error: openai.APIStatusError) -> dict[str, Any]:
    assert isinstance(error.body, dict)
    return error.body


def openai_error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


# (route, body, param, code)
REFUSED: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "/chat/completions",
        {"model": SMOL, "messages": HI, "max_tokens": "10"},
        "max_tokens",
        "invalid_type",
    ),
    (
        "/chat/completions",
        {"model": SMOL, "messages": HI, "stream": "yes"},
        "stream",
        "invalid_type",
    ),
    (
        "/chat/completions",
        {"model": ECHO, "messages": HI, "max_tokens": 10**30},
        "max_tokens",
        "integer_above_max_value",
    ),
    (
        "/chat/completions",
        {"model": TGI, "messages": HI, "seed": 10**30},
        "seed",
        "integer_above_max_value",
    ),
    (
        "/chat/completions",
        {"model": ECHO, "messages": HI, "min_tokens": 10**30},
        "min_tokens",
        "integer_above_max_value",
    ),
    ("/completions", {"model": SMOL, "prompt": "hi", "echo": "yes"}, "echo", "invalid_type"),
    (
        "/completions",
        {"model": ECHO, "prompt": "hi", "max_tokens": 10**30},
        "max_tokens",
        "integer_above_max_value",
    ),
    (
        "/responses",
        {"model": ECHO, "input": "hi", "max_output_tokens": "10"},
        "max_output_tokens",
        "invalid_type",
    ),
    ("/responses", {"model": ECHO, "input": "hi", "seed": "5"}, "seed", "invalid_type"),
    (
        "/responses",
        {"model": ECHO, "input": "hi", "seed": 10**30},
        "seed",
        "integer_above_max_value",
    ),
    ("/embeddings", {"model": E5, "input": "hi", "dimensions": "64"}, "dimensions", "invalid_type"),
    (
        "/rerank",
        {"model": E5, "query": "q", "documents": ["d"], "top_n": "1"},
        "top_n",
        "invalid_type",
    ),
    (
        "/rerank",
        {"model": E5, "query": "q", "documents": ["d"], "return_documents": "yes"},
        "return_documents",
        "invalid_type",
    ),
]


@pytest.mark.usefixtures("no_upstream_call")
@pytest.mark.parametrize(
    ("route", "body", "param", "code"),
    REFUSED,
    ids=[f"{r}-{p}-{c}" for r, _, p, c in REFUSED],
)
def test_a_mistyped_or_oversized_field_is_a_400_before_the_engine(
    http: httpx.Client, route: str, body: dict[str, Any], param: str, code: str
) -> None:
    error = openai_error(http.post(route, json=body))
    assert (error["param"], error["code"]) == (param, code), error


@pytest.mark.usefixtures("no_upstream_call")
def test_the_openai_sdk_gets_openais_type_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=SMOL, messages=HI, max_tokens="10")  # type: ignore[arg-type]
    assert info.value.param == "max_tokens"
    assert info.value.code == "invalid_type"
    assert body_of(info.value)["message"] == (
        "Invalid type for 'max_tokens': expected an integer, but got a string instead."
    )


@pytest.mark.usefixtures("no_upstream_call")
def test_anthropic_messages_are_strict_too(http: httpx.Client) -> None:
    for extra in ({"max_tokens": "10"}, {"max_tokens": 5, "stream": "yes"}):
        response = http.post(
            "/messages",
            json={"model": ECHO, "messages": HI, **{"max_tokens": 5, **extra}},
            headers={"x-api-key": KEY},
        )
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        assert "Invalid type for" in body["error"]["message"]


def test_json_integers_still_go_where_numbers_are_expected(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model=ECHO, messages=HI, temperature=1, top_p=1, max_tokens=16, seed=2**63 - 1
    )
    assert answer.choices[0].message.content == "hi"


VIDEO = {"type": "video_url", "video_url": {"url": "https://example.com/a.mp4"}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
FILE = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERg=="}}


@pytest.mark.usefixtures("no_upstream_call")
@pytest.mark.parametrize("part", [VIDEO, AUDIO, FILE], ids=lambda p: p["type"])
@pytest.mark.parametrize("stream", [False, True])
def test_media_parts_to_a_text_only_model_are_400s(
    client: openai.OpenAI, part: dict[str, Any], stream: bool
) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "what?"}, part]}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=SMOL, messages=messages, stream=stream)  # type: ignore[arg-type]
    assert info.value.param == "messages.0.content.1"
    assert body_of(info.value)["message"].startswith(f"The model `{SMOL}` ")


@pytest.mark.usefixtures("no_upstream_call")
def test_video_to_a_vision_model_without_the_video_flag_is_a_400(client: openai.OpenAI) -> None:
    """The echo model reads images (its catalog flag), not video."""
    messages = [{"role": "user", "content": [{"type": "text", "text": "what?"}, VIDEO]}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=ECHO, messages=messages)  # type: ignore[arg-type]
    assert info.value.param == "messages.0.content.1"
    assert body_of(info.value)["message"] == f"The model `{ECHO}` does not accept video."


@pytest.mark.usefixtures("no_upstream_call")
def test_dimensions_above_the_vector_size_is_a_400_before_the_call(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=E5_MATRYOSHKA, input="x", dimensions=385)
    assert (info.value.param, info.value.code) == ("dimensions", "integer_above_max_value")
    assert "Expected a value <= 384" in body_of(info.value)["message"]
