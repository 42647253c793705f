"""PayloadParts and HTTP chunks cut anywhere (inside SSE lines, JSON objects, UTF-8
characters and event-stream frames) still decode to the same answer."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from emd.local.gateway import LocalGateway

from .conftest import ECHO, endpoint_of

MESSAGE = "Grüße aus Köln — naïve café 🦊 ok"


def container_body() -> bytes:
    """What the proxy sends upstream for MESSAGE (it always asks for usage)."""
    return json.dumps(
        {
            "messages": [{"role": "user", "content": MESSAGE}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()


def upstream_lengths(gateway: LocalGateway) -> tuple[int, int]:
    """(container output bytes, event-stream bytes) of one streamed answer."""
    endpoint = endpoint_of(gateway, ECHO)
    container = next(m for m in gateway.stack.loaded if m.model.id == ECHO).container_url
    headers = {"Content-Type": "application/json"}
    raw = httpx.post(f"{container}/invocations", content=container_body(), headers=headers)
    framed = httpx.post(
        f"{gateway.stack.emulator_url}/endpoints/{endpoint}/invocations-response-stream",
        content=container_body(),
        headers=headers,
    )
    assert raw.status_code == framed.status_code == 200
    return len(raw.content), len(framed.content)


def streamed_text(client: openai.OpenAI) -> tuple[str, int | None]:
    stream = client.chat.completions.create(
        model=ECHO,
        messages=[{"role": "user", "content": MESSAGE}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = [], None
    for chunk in stream:
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
        elif chunk.usage:
            usage = chunk.usage.completion_tokens
    return "".join(text), usage


@pytest.mark.parametrize("kind", ["split_parts", "split_http"])
def test_every_cut_offset_decodes_to_the_same_text(
    gateway: LocalGateway, client: openai.OpenAI, kind: str
) -> None:
    parts_length, http_length = upstream_lengths(gateway)
    length = parts_length if kind == "split_parts" else http_length
    expected = (MESSAGE, len(MESSAGE.split()))
    assert streamed_text(client) == expected
    endpoint = endpoint_of(gateway, ECHO)
    for offset in range(1, length):
        gateway.stack.fault(endpoint, kind, offsets=[offset])
        assert streamed_text(client) == expected, f"{kind} at byte {offset}"


def test_one_byte_payload_parts_decode(gateway: LocalGateway, client: openai.OpenAI) -> None:
    parts_length, _ = upstream_lengths(gateway)
    gateway.stack.fault(endpoint_of(gateway, ECHO), "split_parts", offsets=range(parts_length))
    assert streamed_text(client)[0] == MESSAGE
