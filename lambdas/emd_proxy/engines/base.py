"""The chat flow every engine shares; adapters fill in the engine-specific hooks.

Hooks (pure, easy to test): `build_payload` (OpenAI request -> container body),
`parse_response` (container body -> `chat.completion`) and `parse_chunk` (one stream
payload -> `chat.completion.chunk` or None). The flow (`sse_stream`): re-split the
upstream bytes into lines, normalise each chunk, drop the usage chunk the client did
not ask for, turn a failure into one error event, and always end with `[DONE]`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic_core import from_json, to_json

from ..errors import ProxyError, UpstreamError
from ..log import logger
from ..registry import RegistryEntry
from ..schemas.chat import ChatCompletionRequest
from ..sse import DONE, KEEPALIVE, STREAM_DONE, LineSplitter, event, read_line


class ChatEngine:
    name: str = "base"
    content_type: str = "application/json"

    # --- hooks -------------------------------------------------------------------
    def build_payload(self, request: ChatCompletionRequest, entry: RegistryEntry) -> bytes:
        raise NotImplementedError

    def parse_response(self, body: bytes, entry: RegistryEntry) -> dict[str, Any]:
        raise NotImplementedError

    def parse_chunk(self, payload: bytes, entry: RegistryEntry) -> dict[str, Any] | None:
        raise NotImplementedError

    # --- shared flow -------------------------------------------------------------
    async def sse_stream(
        self,
        parts: AsyncIterator[bytes | None],
        entry: RegistryEntry,
        *,
        include_usage: bool,
    ) -> AsyncIterator[bytes]:
        splitter = LineSplitter()
        done = False
        try:
            async for part in parts:
                if part is None:
                    yield KEEPALIVE
                    continue
                if done:
                    continue  # drain to the end so the connection can be reused
                for line in splitter.feed(part):
                    out = self._line_to_event(line, entry, include_usage)
                    if out is STREAM_DONE:
                        done = True
                        break
                    if out:
                        yield out  # type: ignore[misc]
            if not done:
                for line in splitter.flush():
                    out = self._line_to_event(line, entry, include_usage)
                    if out and out is not STREAM_DONE:
                        yield out  # type: ignore[misc]
        except ProxyError as exc:
            yield event(exc.body())
        except Exception:  # noqa: BLE001 - a bug must still end the stream cleanly
            logger.exception("stream failed", extra={"model": entry.id})
            yield event(UpstreamError("The model's response could not be read.").body())
        yield DONE

    def _line_to_event(
        self, line: bytes, entry: RegistryEntry, include_usage: bool
    ) -> bytes | object | None:
        payload = read_line(line)
        if payload is None or payload is STREAM_DONE:
            return payload
        chunk = self.parse_chunk(payload, entry)  # type: ignore[arg-type]
        if chunk is None:
            return None
        # The usage chunk is the only one allowed without choices, and only when the
        # client asked for it: clients read `chunk.choices[0]` on every chunk.
        if not chunk.get("choices") and not (include_usage and chunk.get("usage")):
            return None
        return b"data: " + to_json(chunk) + b"\n\n"


def load_json_object(body: bytes, what: str) -> dict[str, Any]:
    """Parse a container's JSON, or fail as a bad upstream answer (502)."""
    try:
        parsed = from_json(body)
    except ValueError as exc:
        raise UpstreamError(f"The model returned an unreadable {what}.") from exc
    if not isinstance(parsed, dict):
        raise UpstreamError(f"The model returned an unexpected {what}.")
    error = parsed.get("error")
    if error or parsed.get("object") == "error":
        message = (
            error.get("message") if isinstance(error, dict) else (error or parsed.get("message"))
        )
        raise UpstreamError(f"The model failed: {message or 'unknown error'}")
    return parsed
