"""The emulator's InvokeEndpointWithResponseStream on the wire: which PayloadParts it
makes of a container's answer (what has arrived, never held back), the faults that
count parts, and how a container failing mid-answer ends the event stream."""

from __future__ import annotations

import itertools
import json
import re
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from botocore.eventstream import EventStreamBuffer, EventStreamMessage

from emd.local.containers.echo import EchoContainer
from emd.local.emulator import Emulator
from emd.local.servers import BackgroundServers

WORDS = "one two three four five six"
SHORT_LIMIT = 0.3


class _Broken(socketserver.BaseRequestHandler):
    """A container that starts a chunked answer and drops the connection mid-way."""

    def handle(self) -> None:
        self.request.recv(65536)
        self.request.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n6\r\ndata: \r\n"
        )
        self.request.shutdown(socket.SHUT_RDWR)


@dataclass
class Setup:
    emulator: Emulator
    url: str
    short_url: str  # an emulator with a SHORT_LIMIT invoke limit
    container_url: str


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    broken = socketserver.TCPServer(("127.0.0.1", 0), _Broken)
    threading.Thread(target=broken.serve_forever, daemon=True).start()
    broken_url = f"http://127.0.0.1:{broken.server_address[1]}"
    servers = BackgroundServers("emulator-stream-tests")
    container_url = servers.add(EchoContainer().app())
    endpoints = {"echo": container_url, "broken": broken_url}
    emulator = Emulator(endpoints)
    url = servers.add(emulator.app(), lifespan=True)
    short_url = servers.add(Emulator(endpoints, SHORT_LIMIT).app(), lifespan=True)
    servers.start()
    yield Setup(emulator, url, short_url, container_url)
    servers.stop()
    broken.shutdown()
    broken.server_close()


def body(**extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": WORDS}], "stream": True, **extra}


def stream(base: str, endpoint: str, payload: dict[str, Any]) -> list[EventStreamMessage]:
    response = httpx.post(
        f"{base}/endpoints/{endpoint}/invocations-response-stream", json=payload, timeout=10
    )
    assert response.status_code == 200
    return decode(response.content)


def decode(data: bytes) -> list[EventStreamMessage]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def payloads(messages: list[EventStreamMessage]) -> list[bytes]:
    parts = [m for m in messages if m.headers[":message-type"] == "event"]
    assert all(m.headers[":event-type"] == "PayloadPart" for m in parts)
    return [m.payload for m in parts]


def container_chunks(setup: Setup, payload: dict[str, Any]) -> list[bytes]:
    """The container's own HTTP chunks, with the per-answer id and time blanked."""
    with httpx.stream("POST", f"{setup.container_url}/invocations", json=payload) as answer:
        return [same_answer(chunk) for chunk in answer.iter_raw()]


def container_events(setup: Setup, payload: dict[str, Any]) -> list[bytes]:
    """The container's SSE events, each with its blank line, however it wrote them."""
    whole = b"".join(container_chunks(setup, payload))
    return [event + b"\n\n" for event in whole.split(b"\n\n") if event]


def same_answer(data: bytes) -> bytes:
    return re.sub(rb'"(id|created)":("[^"]*"|\d+)', rb'"\1":0', data)


def exception(messages: list[EventStreamMessage]) -> tuple[str, dict[str, str]]:
    last = messages[-1]
    assert last.headers[":message-type"] == "exception"
    return last.headers[":exception-type"], json.loads(last.payload)


def test_an_instant_answer_is_forwarded_whole_in_fewer_parts(setup: Setup) -> None:
    whole = b"".join(container_chunks(setup, body()))
    parts = payloads(stream(setup.url, "echo", body()))
    assert same_answer(b"".join(parts)) == whole
    assert len(parts) < whole.count(b"\n\n"), "arrived chunks were not forwarded together"


def test_a_paced_answer_sends_each_chunk_as_it_is_generated(setup: Setup) -> None:
    arrivals: list[tuple[float, str]] = []
    buffer = EventStreamBuffer()
    url = f"{setup.url}/endpoints/echo/invocations-response-stream"
    with httpx.stream("POST", url, json=body(echo_delay_ms=40), timeout=10) as response:
        for raw in response.iter_raw():
            buffer.add_data(raw)
            now = time.monotonic()
            for message in buffer:
                for event in message.payload.decode().split("\n\n"):
                    if '"content":"' in event:
                        delta = json.loads(event[6:])["choices"][0]["delta"]["content"]
                        arrivals.append((now, delta))
    assert "".join(d for _, d in arrivals if d) == WORDS
    words = [t for t, d in arrivals if d.strip()]
    gaps = [b - a for a, b in itertools.pairwise(words)]
    assert len(words) == len(WORDS.split())
    assert min(gaps) > 0.02, f"chunks were held back and sent together: {gaps}"


def test_stream_error_after_n_parts_counts_the_containers_events(setup: Setup) -> None:
    chunks = container_events(setup, body())
    setup.emulator.faults.add("echo", "stream_error", after=3, message="boom")
    messages = stream(setup.url, "echo", body())
    assert [same_answer(p) for p in payloads(messages)] == chunks[:3]
    kind, error = exception(messages)
    assert (kind, error) == ("ModelStreamError", {"Message": "boom", "ErrorCode": "ModelError"})


def test_stall_after_n_parts_pauses_between_the_containers_events(setup: Setup) -> None:
    chunks = container_events(setup, body())
    setup.emulator.faults.add("echo", "stall", after=2, seconds=0.3)
    started = time.monotonic()
    assert [same_answer(p) for p in payloads(stream(setup.url, "echo", body()))] == chunks
    assert time.monotonic() - started >= 0.3


def test_a_stall_without_after_delays_the_answer_once(setup: Setup) -> None:
    setup.emulator.faults.add("echo", "stall", seconds=0.3)
    started = time.monotonic()
    stream(setup.url, "echo", body())
    assert 0.3 <= time.monotonic() - started < 0.55


def test_split_parts_cuts_at_container_byte_offsets(setup: Setup) -> None:
    whole = b"".join(container_chunks(setup, body()))
    setup.emulator.faults.add("echo", "split_parts", offsets=[5, 17])
    parts = payloads(stream(setup.url, "echo", body()))
    assert same_answer(b"".join(parts)) == whole
    assert [len(p) for p in parts[:2]] == [5, 12]


def test_a_container_dropping_the_connection_ends_with_stream_broken(setup: Setup) -> None:
    finished = setup.emulator.stats.streams_finished
    messages = stream(setup.url, "broken", body())
    kind, error = exception(messages)
    assert kind == "ModelStreamError"
    assert error["ErrorCode"] == "StreamBroken"
    assert setup.emulator.stats.streams_finished == finished + 1
    assert setup.emulator.stats.streams_open == 0


def test_a_container_silent_past_the_limit_ends_with_a_timeout_error(setup: Setup) -> None:
    slow = body(echo_delay_ms=SHORT_LIMIT * 3000)
    messages = stream(setup.short_url, "echo", slow)
    assert payloads(messages), "what the container sent in time is forwarded"
    kind, error = exception(messages)
    assert kind == "ModelStreamError"
    assert error["ErrorCode"] == "ModelInvocationTimeExceeded"
