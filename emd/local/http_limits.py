"""Read limits for the proxy's public socket under `emd serve`: a client may not hold a
connection by sending its request head or body slowly, nor send an oversized head.

uvicorn (0.54) bounds only the idle time between requests (`timeout_keep_alive`) and,
with its h11 protocol, the size of an incomplete head (`h11_max_incomplete_event_size`;
its httptools protocol has no such limit). It has no head or body read timeout, so:
- `HeadTimeoutH11`: uvicorn's h11 protocol with a deadline on each request head,
  armed when a connection opens or a new head starts arriving, disarmed once the head
  is complete. Past it the connection gets a bare 408 and is closed (no request exists
  yet, so there is nothing to answer in the API's shape). It also bounds the head's
  size: h11's own limit only counts a head still incomplete, so one that arrives whole
  in a single read passes it; here either way gets a bare 431.
- `BodyTimeout`: ASGI middleware giving the body a deadline from the app's first read;
  past it the client gets a 408 in the OpenAI error shape and the app sees a
  disconnect.
In AWS, API Gateway reads the request before the Lambda runs, so neither applies there.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from functools import partial
from typing import Any

import h11
from pydantic_core import to_json
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from emd_proxy.errors import error_body


@dataclass(frozen=True)
class ReadLimits:
    header_seconds: float = 10.0
    body_seconds: float = 60.0
    # The whole request head (request line and headers), as h11 buffers it.
    header_bytes: int = 16 * 1024

    @classmethod
    def from_env(cls) -> ReadLimits:
        """EMD_HEADER_TIMEOUT_SECONDS, EMD_BODY_TIMEOUT_SECONDS, EMD_MAX_HEADER_BYTES."""
        default = cls()
        return cls(
            float(os.environ.get("EMD_HEADER_TIMEOUT_SECONDS") or default.header_seconds),
            float(os.environ.get("EMD_BODY_TIMEOUT_SECONDS") or default.body_seconds),
            int(os.environ.get("EMD_MAX_HEADER_BYTES") or default.header_bytes),
        )


_CLOSE = b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_HEAD_TIMEOUT = b"HTTP/1.1 408 Request Timeout" + _CLOSE
_HEAD_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large" + _CLOSE


class HeadTimeoutH11(H11Protocol):
    """Built by `protocol_class` (uvicorn takes a protocol factory)."""

    def __init__(self, *args: Any, head_seconds: float, head_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_seconds = head_seconds
        self._head_bytes = head_bytes
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._head_too_large(data):
            self._disarm_head_timer()
            self.transport.write(_HEAD_TOO_LARGE)
            self.transport.close()
            return
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm_head_timer()  # a head has started (or the connection is fresh)
        else:
            self._disarm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _head_too_large(self, data: bytes) -> bool:
        """Whether the head being received (h11's unparsed bytes, then `data`) is, or
        already runs, longer than the limit."""
        pending = self.conn.trailing_data[0] + data
        end = pending.find(b"\r\n\r\n", 0, self._head_bytes + 4)
        return end == -1 and len(pending) > self._head_bytes

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._head_seconds, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.write(_HEAD_TIMEOUT)
            self.transport.close()


def protocol_class(limits: ReadLimits) -> Any:
    return partial(
        HeadTimeoutH11, head_seconds=limits.header_seconds, head_bytes=limits.header_bytes
    )


class BodyTimeout:
    """408 (OpenAI shape) when the request body is not all there `seconds` after the
    app first asks for it. Reads after the body (a streaming response waiting for a
    disconnect) are not timed."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        body_done = False
        answered = False  # by us, after a timeout
        started = False  # by the app

        async def timed_receive() -> Message:
            nonlocal deadline, body_done, answered
            if answered:
                return {"type": "http.disconnect"}
            if body_done:
                return await receive()
            if deadline is None:
                deadline = loop.time() + self.seconds
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0))
            except TimeoutError:
                if not started:
                    answered = True
                    await _send_timeout(send, self.seconds)
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the client already has our 408
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, timed_receive, tracked_send)


async def _send_timeout(send: Send, seconds: float) -> None:
    body = to_json(
        error_body(
            f"The request body did not arrive within {seconds:g} s.",
            "invalid_request_error",
            None,
            "request_timeout",
        )
    )
    await send(
        {
            "type": "http.response.start",
            "status": 408,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
