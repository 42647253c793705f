"""PayloadParts and HTTP chunks cut anywhere (inside SSE lines, JSON objects, UTF-8
characters and event-stream frames) still decode to the same answer.

End to end, every byte offset is cut: each request cuts at every STRIDE-th offset
from a different start, so STRIDE requests per kind cover them all (one request per
offset took ~2,000 round trips). In process, the real container answer is also cut
at each single offset and run through the stream pipeline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from emd.local.gateway import LocalGateway
from emd_proxy.chunks import ChunkNormalizer, StreamFixer
from emd_proxy.streaming import chat_chunks, fold

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


STRIDE = 8


@pytest.mark.parametrize("kind", ["split_parts", "split_http"])
def test_every_cut_offset_decodes_to_the_same_text(
    gateway: LocalGateway, client: openai.OpenAI, kind: str
) -> None:
    parts_length, http_length = upstream_lengths(gateway)
    length = parts_length if kind == "split_parts" else http_length
    expected = (MESSAGE, len(MESSAGE.split()))
    assert streamed_text(client) == expected
    endpoint = endpoint_of(gateway, ECHO)
    covered: set[int] = set()
    for start in range(1, STRIDE + 1):
        offsets = range(start, length, STRIDE)
        covered.update(offsets)
        gateway.stack.fault(endpoint, kind, offsets=offsets)
        assert streamed_text(client) == expected, f"{kind} at bytes {start}, +{STRIDE}, ..."
    assert covered == set(range(1, length))


def test_the_container_answer_cut_at_each_single_offset_in_process(
    gateway: LocalGateway,
) -> None:
    container = next(m for m in gateway.stack.loaded if m.model.id == ECHO).container_url
    answer = httpx.post(
        f"{container}/invocations",
        content=container_body(),
        headers={"Content-Type": "application/json"},
    ).content

    def text_of(parts: list[bytes]) -> str:
        async def source() -> AsyncIterator[bytes | None]:
            for part in parts:
                yield part

        async def collect() -> str:
            builder = await fold(chat_chunks(source(), StreamFixer(), ChunkNormalizer(ECHO)))
            return str(builder.result(ECHO)["choices"][0]["message"]["content"])

        return asyncio.run(collect())

    assert text_of([answer]) == MESSAGE
    for offset in range(1, len(answer)):
        assert text_of([answer[:offset], answer[offset:]]) == MESSAGE, f"cut at byte {offset}"


def test_one_byte_payload_parts_decode(gateway: LocalGateway, client: openai.OpenAI) -> None:
    parts_length, _ = upstream_lengths(gateway)
    gateway.stack.fault(endpoint_of(gateway, ECHO), "split_parts", offsets=range(parts_length))
    assert streamed_text(client)[0] == MESSAGE
