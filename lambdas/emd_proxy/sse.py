"""Server-sent events, both ways.

Reading: SageMaker PayloadParts do not align with lines, JSON objects or UTF-8
characters, so bytes are buffered until a whole line is there and only then decoded.
Engines speak SSE (`data: {...}`) or JSON lines (LMI); `read_line` accepts both.

Writing: one formatter for `data: <json>\\n\\n`, the `[DONE]` terminator, error events
and keep-alive comments.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic_core import to_json

DONE: Final = b"data: [DONE]\n\n"
KEEPALIVE: Final = b": keep-alive\n\n"


class LineSplitter:
    """Feeds arbitrary byte pieces in, gets whole lines out (without `\\n` / `\\r\\n`)."""

    def __init__(self) -> None:
        self._pending: list[bytes] = []  # the pieces of an unfinished line

    def feed(self, data: bytes) -> list[bytes]:
        if b"\n" not in data:
            self._pending.append(data)
            return []
        if self._pending:
            data = b"".join([*self._pending, data])
            self._pending.clear()
        lines = data.split(b"\n")
        rest = lines.pop()
        if rest:
            self._pending.append(rest)
        if b"\r" in data:
            return [line[:-1] if line.endswith(b"\r") else line for line in lines]
        return lines

    def flush(self) -> list[bytes]:
        """What is left when the stream ends (a last line without a newline)."""
        rest = b"".join(self._pending).rstrip(b"\r")
        self._pending.clear()
        return [rest] if rest.strip() else []


class StreamDone:
    """Marker returned by `read_line` for the `[DONE]` line."""


STREAM_DONE: Final = StreamDone()


def read_line(line: bytes) -> bytes | StreamDone | None:
    """One line of an SSE or JSON-lines stream -> its JSON payload, `STREAM_DONE`, or
    None for lines that carry nothing (blank, comments, `event:`/`id:`/`retry:`)."""
    stripped = line.strip()
    if not stripped or stripped.startswith(b":"):
        return None
    if stripped.startswith(b"data:"):
        payload = stripped[5:].strip()
        if payload == b"[DONE]":
            return STREAM_DONE
        return payload or None
    if stripped.startswith((b"{", b"[")):
        return stripped
    return None  # other SSE fields (event:, id:, retry:)


def event(payload: Any) -> bytes:
    """A `data:` event for a JSON-serialisable object."""
    return b"data: " + to_json(payload) + b"\n\n"
