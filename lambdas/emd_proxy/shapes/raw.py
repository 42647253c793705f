"""The raw pass-through (`/v1/invocations`): the container's bytes as they come. Only
an SSE answer has a way to carry keep-alives, a late error and `[DONE]`. Any other
content type (LMI's JSON lines, ...) has no error framing a client would know, so a
failure after the stream started cuts the HTTP body off: the chunked body ends without
its terminating chunk and the connection closes (`streaming.StreamAborted`); HTTP
clients report it (httpx: `RemoteProtocolError`, "incomplete chunked read"), so a
truncated answer never looks whole."""

from __future__ import annotations

from ..errors import ProxyError
from ..sse import DONE, KEEPALIVE, event


class RawEvents:
    def __init__(self, media_type: str) -> None:
        self.media_type = media_type
        self.sse = media_type.startswith("text/event-stream")
        self.keepalive = KEEPALIVE if self.sse else b""
        self._failed = False

    def open(self) -> bytes:
        return b""

    def batch(self, items: bytes) -> bytes:
        return items

    def close(self) -> bytes:
        return b""

    def error(self, exc: ProxyError) -> bytes | None:
        self._failed = True
        return event(exc.body()) if self.sse else None

    def done(self) -> bytes:
        # Only after an error: a container's own SSE stream carries its own `[DONE]`.
        return DONE if self.sse and self._failed else b""
