"""OpenAI chat completions: the normalised chunks are already this shape's, so the
stream is each chunk as a `data:` event and the answer is the folded completion."""

from __future__ import annotations

from typing import Any, Final

from pydantic_core import to_json

from ..chunks import Batch
from ..errors import ProxyError
from ..sse import DONE, KEEPALIVE, event


class ChatEvents:
    """`chat.completion.chunk` events. The usage chunk (the only one without choices)
    goes out only when the client asked for it: clients read `chunk.choices[0]` on
    every chunk."""

    media_type: Final = "text/event-stream"
    keepalive: Final = KEEPALIVE

    def __init__(self, *, include_usage: bool) -> None:
        self.include_usage = include_usage

    def open(self) -> bytes:
        return b""

    def batch(self, items: Batch) -> bytes:
        return b"".join(
            b"data: " + to_json(self.shape(chunk)) + b"\n\n"
            for chunk in items
            if chunk["choices"] or self.include_usage
        )

    @staticmethod
    def shape(chunk: dict[str, Any]) -> dict[str, Any]:
        """A normalised chunk as this API writes it (chat: as it is)."""
        return chunk

    def close(self) -> bytes:
        return b""

    def error(self, exc: ProxyError) -> bytes:
        return event(exc.body())

    def done(self) -> bytes:
        return DONE
