"""The proxy's socket under `emd serve` read limits (emd/local/http_limits.py), driven
by raw socket clients on 127.0.0.1: a slow or idle head is cut off, an oversized head
refused, a stalled body answered with a 408 in the OpenAI shape, while ordinary
requests, keep-alive and a long streamed answer are untouched. Limits are scaled down
so each client stops by itself within seconds."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from emd.local.http_limits import ReadLimits
from emd.local.servers import BackgroundServers
from emd_proxy.app import create_app
from emd_proxy.auth import KeyStore
from emd_proxy.registry import Registry
from emd_proxy.settings import Settings

KEY = "sk-read-limits"
LIMITS = ReadLimits(header_seconds=1.0, body_seconds=1.0, header_bytes=16 * 1024)
GUARD = 10.0  # how long a client waits for the server to act before failing


async def _slow_stream(_: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(4):  # outlasts the body deadline
            await asyncio.sleep(LIMITS.body_seconds / 2)
            yield f"chunk {i}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


@pytest.fixture(scope="module")
def ports() -> Iterator[tuple[int, int]]:
    """(the proxy app, a slow streaming app), both behind the limits."""
    servers = BackgroundServers("read-limits")
    with pytest.MonkeyPatch.context() as env:  # a client is built; nothing is called
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        proxy = create_app(Settings(), registry=Registry([]), keys=KeyStore.static({"k": KEY}))
    proxy_url = servers.add(proxy, lifespan=True, limits=LIMITS)
    stream_url = servers.add(Starlette(routes=[Route("/s", _slow_stream)]), limits=LIMITS)
    servers.start()
    yield int(proxy_url.rsplit(":", 1)[1]), int(stream_url.rsplit(":", 1)[1])
    servers.stop()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=GUARD)
    sock.settimeout(0.1)
    return sock


def read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    data = b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data  # closed with our bytes unread: what was answered came first
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the server kept the connection open; got {data[:200]!r}")


def test_a_head_sent_byte_by_byte_is_cut_off(ports: tuple[int, int]) -> None:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    deadline = time.monotonic() + GUARD
    with connect(ports[0]) as sock:
        for byte in head:  # one byte per 0.1 s: far slower than the head deadline allows
            try:
                sock.sendall(bytes([byte]))
                answer = sock.recv(65536)
            except TimeoutError:
                assert time.monotonic() < deadline, "the slow head was never cut off"
                continue
            except (BrokenPipeError, ConnectionResetError):
                return
            assert answer.startswith(b"HTTP/1.1 408") or answer == b""
            return
    raise AssertionError("the whole slow head went through")


def test_an_idle_connection_is_closed(ports: tuple[int, int]) -> None:
    with connect(ports[0]) as sock:
        answer = read_until_closed(sock, time.monotonic() + GUARD)
    assert answer.startswith(b"HTTP/1.1 408")


@pytest.mark.parametrize("whole", [True, False])
def test_an_oversized_head_is_refused(ports: tuple[int, int], whole: bool) -> None:
    """Whole in one write, or in pieces (h11's own limit sees only the latter)."""
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (20 * 1024) + b"\r\n\r\n"
    with connect(ports[0]) as sock:
        try:
            if whole:
                sock.sendall(head)
            else:
                for start in range(0, len(head), 4096):
                    sock.sendall(head[start : start + 4096])
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the rest arrived; the answer is still readable
        answer = read_until_closed(sock, time.monotonic() + GUARD)
    assert answer.startswith(b"HTTP/1.1 431")


def test_a_stalled_body_gets_a_408_in_openai_shape(ports: tuple[int, int]) -> None:
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n"
    ).encode()
    with connect(ports[0]) as sock:
        sock.sendall(head + b'{"model": ')  # then nothing more
        answer = read_until_closed(sock, time.monotonic() + GUARD)
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 408")
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "request_timeout"
    assert body["error"]["type"] == "invalid_request_error"


def test_ordinary_requests_and_keep_alive_are_untouched(ports: tuple[int, int]) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    with connect(ports[0]) as sock:
        for _ in range(2):  # the same connection, twice
            sock.sendall(request)
            answer = b""
            deadline = time.monotonic() + GUARD
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                assert time.monotonic() < deadline
                try:
                    answer += sock.recv(65536)
                except TimeoutError:
                    continue
            assert answer.startswith(b"HTTP/1.1 200")


def test_a_streamed_answer_outlasts_the_body_deadline(ports: tuple[int, int]) -> None:
    with connect(ports[1]) as sock:
        sock.sendall(b"GET /s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = read_until_closed(sock, time.monotonic() + GUARD)
    assert answer.startswith(b"HTTP/1.1 200")
    assert b"chunk 3" in answer
