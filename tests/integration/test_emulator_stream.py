"""The emulator's InvokeEndpointWithResponseStream on the wire: which PayloadParts it
makes of a container's answer (what has arrived, never held back), the faults that
count parts, and how a container failing mid-answer ends the event stream."""

from __future__ import annotations

import json
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
# Long next to one echo answer (milliseconds), so another request finishes well within
# a stall; the tests observe that order, never how long anything took.
STALL = 1.0
GATED_EVENTS = [b'data: {"n": 1}\n\n', b'data: {"n": 2}\n\n', b'data: {"n": 3}\n\n']


class _Broken(socketserver.BaseRequestHandler):
    """A container that starts a chunked answer and drops the connection mid-way."""

    def handle(self) -> None:
        self.request.recv(65536)
        self.request.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n6\r\ndata: \r\n"
        )
        self.request.shutdown(socket.SHUT_RDWR)


class _GatedServer(socketserver.TCPServer):
    # Released once per event by the test: the container writes an event only then.
    gate: threading.Semaphore


class _Gated(socketserver.BaseRequestHandler):
    """A container that streams GATED_EVENTS one HTTP chunk each, writing the next one
    only when the test releases `server.gate`: so the test knows, whenever a part
    arrives, that the container has not written anything after it yet."""

    server: _GatedServer

    def handle(self) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += self.request.recv(65536)
        head, _, body = request.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        while length and len(body) < int(length.group(1)):
            body += self.request.recv(65536)
        self.request.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        )
        for event in GATED_EVENTS:
            if not self.server.gate.acquire(timeout=10):
                return  # the test gave up; it has failed already
            self.request.sendall(b"%x\r\n%s\r\n" % (len(event), event))
        self.request.sendall(b"0\r\n\r\n")


def _serve_in_background(server: socketserver.TCPServer) -> str:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


@dataclass
class Setup:
    emulator: Emulator
    url: str
    short_url: str  # an emulator with a SHORT_LIMIT invoke limit
    container_url: str
    gate: threading.Semaphore  # lets the "gated" container write its next event


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    broken = socketserver.TCPServer(("127.0.0.1", 0), _Broken)
    gated = _GatedServer(("127.0.0.1", 0), _Gated)
    gated.gate = threading.Semaphore(0)
    servers = BackgroundServers("emulator-stream-tests")
    container_url = servers.add(EchoContainer().app())
    endpoints = {
        "echo": container_url,
        "broken": _serve_in_background(broken),
        "gated": _serve_in_background(gated),
    }
    emulator = Emulator(endpoints)
    url = servers.add(emulator.app(), lifespan=True)
    short_url = servers.add(Emulator(endpoints, SHORT_LIMIT).app(), lifespan=True)
    servers.start()
    yield Setup(emulator, url, short_url, container_url, gated.gate)
    servers.stop()
    for server in (broken, gated):
        server.shutdown()
        server.server_close()


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


def poll(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def exception(messages: list[EventStreamMessage]) -> tuple[str, dict[str, str]]:
    last = messages[-1]
    assert last.headers[":message-type"] == "exception"
    return last.headers[":exception-type"], json.loads(last.payload)


def test_an_instant_answer_is_forwarded_whole_in_fewer_parts(setup: Setup) -> None:
    whole = b"".join(container_chunks(setup, body()))
    parts = payloads(stream(setup.url, "echo", body()))
    assert same_answer(b"".join(parts)) == whole
    assert len(parts) < whole.count(b"\n\n"), "arrived chunks were not forwarded together"


def test_each_chunk_is_forwarded_before_the_container_writes_the_next(setup: Setup) -> None:
    url = f"{setup.url}/endpoints/gated/invocations-response-stream"
    buffer = EventStreamBuffer()
    # The read timeout only stops a hang: an emulator holding a chunk back until more
    # arrives never sends it, as the container writes nothing more until it has.
    with httpx.stream("POST", url, json=body(), timeout=10) as response:
        reads = response.iter_raw()
        for event in GATED_EVENTS:
            setup.gate.release()
            forwarded = b""
            while len(forwarded) < len(event):
                buffer.add_data(next(reads))
                forwarded += b"".join(m.payload for m in buffer)
            assert forwarded == event
        assert not [m for m in decode(b"".join(reads)) if m.payload]


def test_stream_error_after_n_parts_counts_the_containers_events(setup: Setup) -> None:
    chunks = container_events(setup, body())
    setup.emulator.faults.add("echo", "stream_error", after=3, message="boom")
    messages = stream(setup.url, "echo", body())
    assert [same_answer(p) for p in payloads(messages)] == chunks[:3]
    kind, error = exception(messages)
    assert (kind, error) == ("ModelStreamError", {"Message": "boom", "ErrorCode": "ModelError"})


def test_stall_after_n_parts_pauses_between_the_containers_events(setup: Setup) -> None:
    chunks = container_events(setup, body())
    setup.emulator.faults.add("echo", "stall", after=2, seconds=STALL)
    received: list[bytes] = []
    two_parts = threading.Event()

    def read_stalled() -> None:
        buffer = EventStreamBuffer()
        url = f"{setup.url}/endpoints/echo/invocations-response-stream"
        with httpx.stream("POST", url, json=body(), timeout=10) as response:
            for raw in response.iter_raw():
                buffer.add_data(raw)
                received.extend(same_answer(m.payload) for m in buffer)
                if len(received) >= 2:
                    two_parts.set()

    with ThreadPoolExecutor(1) as pool:
        stalled = pool.submit(read_stalled)
        assert two_parts.wait(10)
        # A whole answer to another request comes and goes within the stall...
        assert payloads(stream(setup.url, "echo", body()))
        assert len(received) == 2, "the stall did not hold back the rest"
        stalled.result()
    # ...after which the stalled stream goes on with nothing lost.
    assert received == chunks


def test_a_stall_without_after_delays_the_answer_once(setup: Setup) -> None:
    before = setup.emulator.stats.by_endpoint.get("echo", 0)
    setup.emulator.faults.add("echo", "stall", seconds=STALL)
    with ThreadPoolExecutor(1) as pool:
        delayed = pool.submit(stream, setup.url, "echo", body())
        # Counted, so it has taken the fault (both happen before the emulator awaits).
        poll(lambda: setup.emulator.stats.by_endpoint.get("echo", 0) > before)
        # The fault is used up: the next request is not delayed, and finishes first.
        prompt = stream(setup.url, "echo", body())
        assert not delayed.done(), "the stalled answer was not delayed"
        answer = delayed.result()
    assert same_answer(b"".join(payloads(answer))) == same_answer(b"".join(payloads(prompt)))


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
