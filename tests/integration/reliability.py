"""Checks the reliability suite shares: nothing private in an answer, OpenAI's error
shape, and a server that still serves after whatever was thrown at it."""

from __future__ import annotations

import contextlib
import re
import socket
from typing import Any

import httpx

from emd.local.emulator import ACCOUNT
from emd.local.gateway import LocalGateway

from .conftest import ECHO, KEY, SCOPED_KEY

# What no answer may contain: a Python stack trace, a key, an AWS ARN or the account id
# (the emulator's SageMaker errors name its account and log stream ARNs, as SageMaker's
# do). Any twelve digits would match random hex ids now and then: the account it is.
_LEAKS = re.compile(
    "|".join(
        [
            r"Traceback \(most recent call last\)",
            r"File \"[^\"]+\", line \d+",
            r"arn:aws[\w-]*:",
            *(re.escape(secret) for secret in (ACCOUNT, KEY, SCOPED_KEY)),
        ]
    )
)


def assert_no_leak(text: str) -> None:
    found = _LEAKS.search(text)
    assert found is None, f"the answer reveals {found.group(0)!r}: {text[:300]}"


def assert_openai_error(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    """A non-2xx answer in OpenAI's shape, with one of `statuses` (any 4xx if none)."""
    if statuses:
        assert response.status_code in statuses, (response.status_code, response.text[:300])
    else:
        assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert_no_leak(response.text)
    return error  # type: ignore[no-any-return]


def assert_healthy(gateway: LocalGateway) -> None:
    """/health and a normal chat completion answer correctly, on new connections (what
    is checked is the server, not a connection an earlier case may have spoiled)."""
    root = gateway.base_url.removesuffix("/v1")
    with httpx.Client(timeout=30) as http:
        health = http.get(f"{root}/health")
        assert health.status_code == 200, health.text
        assert health.json() == {"status": "ok"}
        answer = http.post(
            f"{gateway.base_url}/chat/completions",
            json={"model": ECHO, "messages": [{"role": "user", "content": "still serving"}]},
            headers={"Authorization": f"Bearer {KEY}"},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "still serving"


def address(gateway: LocalGateway) -> tuple[str, int]:
    url = httpx.URL(gateway.base_url)
    assert url.host and url.port
    return url.host, url.port


def raw_exchange(gateway: LocalGateway, request: bytes, *, timeout: float = 10.0) -> bytes:
    """Sends `request` bytes as they are (httpx refuses to send malformed ones) and
    reads one answer: its head, then as much body as its Content-Length says (or up
    to the close). The timeout guards against a hang; it is not a speed check."""
    with socket.create_connection(address(gateway), timeout=timeout) as sock:
        # Answered (and closed) before taking it all: read what it said.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        received = b""
        while True:
            head, sep, body = received.partition(b"\r\n\r\n")
            if sep:
                length = _content_length(head)
                if length is not None and len(body) >= length:
                    return received
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return received
            if not chunk:
                return received
            received += chunk


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return None


def status_of(raw: bytes) -> int:
    """The status code of a raw HTTP/1.1 answer (0 when there is none)."""
    line = raw.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/") else 0
