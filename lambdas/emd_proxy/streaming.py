"""The stream pipeline: upstream parts in, an API shape's SSE body (or one folded
answer) out. Every streamed route goes through here, so the rules live once:

    parts (bytes | None)                         SageMaker PayloadParts; None: keep-alive due
      -> chat_chunks()                           lines re-split across parts (SSE or JSON
                                                 lines), container errors sniffed, the
                                                 engine's StreamFixer, ChunkNormalizer;
                                                 batches of normalised chunks
      -> started()                               the first batch read before the response
                                                 starts, so a failure to start keeps its
                                                 real HTTP status
      -> sse_body(batches, renderer)             one write per batch in the renderer's API
                                                 shape; keep-alives; a failure after the
                                                 start is one error event (or, where the
                                                 shape has no way to say it, a body cut
                                                 off: `StreamAborted`); the terminator
                                                 always; the upstream closed at once when
                                                 the client leaves
    or -> fold()                                 one `chat.completion` for non-stream
                                                 clients (every shape converts from it)

A renderer is all a new API shape adds (see `Renderer`). The chunks one upstream part
completed travel as a batch and go out in one write: a model that streams token by
token sends a part per token, so nothing waits, and an answer that arrives at once
costs one write instead of one per chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

from starlette.responses import StreamingResponse

from .chunks import Batch, ChunkNormalizer, CompletionBuilder, StreamFixer
from .errors import ProxyError, UpstreamError
from .log import logger
from .sse import STREAM_DONE, LineSplitter, read_line
from .upstream_json import load_json_object

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)
UsageSink = Callable[[dict[str, Any] | None], None]

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Renderer(Protocol[T_contra]):
    """One API shape's stream: what goes out before the first batch, for each batch,
    after the last, for a failure, and as the very last write (also after a failure).
    Each returns the bytes of one write (b"" for nothing); `error` returns None when
    the shape cannot carry an error (the body is then cut off, see `StreamAborted`)."""

    media_type: str
    keepalive: bytes  # written when the upstream has been silent a while (b"": none)

    def open(self) -> bytes: ...
    def batch(self, items: T_contra) -> bytes: ...
    def close(self) -> bytes: ...
    def error(self, exc: ProxyError) -> bytes | None: ...
    def done(self) -> bytes: ...


class StreamAborted(Exception):
    """A started stream failed and its shape has no way to say so (a raw stream that
    is not SSE): the HTTP body is left unfinished on purpose. Raised out of the body
    iterator, it ends the response without its last chunk (the middleware lets the
    app return quietly; uvicorn then drops the connection), so the client's HTTP
    library reports an incomplete body instead of a shortened answer that looks
    whole."""


# --- upstream parts -> normalised chunk batches ---------------------------------------


async def chat_chunks(
    parts: AsyncIterator[bytes | None],
    fixer: StreamFixer,
    normalise: ChunkNormalizer,
    on_usage: UsageSink | None = None,
) -> AsyncIterator[Batch | None]:
    """Normalised chunks with choices, then one usage chunk (`choices: []`) if the
    engine reported usage, in batches: the chunks each upstream part completed (never
    empty); None where a keep-alive is due. `on_usage` gets the usage (or None) when
    the stream ends, however it ends. Leaving early closes the upstream stream."""

    def add(batch: Batch, raw: list[dict[str, Any]]) -> None:
        for chunk in raw:
            if normalise(chunk)["choices"]:
                batch.append(chunk)

    try:
        async for payloads in _payloads(parts):
            if payloads is None:
                yield None
                continue
            batch: Batch = []
            failure: ProxyError | None = None
            try:
                for payload in payloads:
                    add(batch, fixer.fix(load_json_object(payload, "stream chunk")))
            except ProxyError as exc:
                failure = exc  # what came before the failure still goes out
            if batch:
                yield batch
            if failure is not None:
                raise failure
        batch = []
        add(batch, fixer.end())
        if normalise.usage:
            batch.append(normalise.usage_chunk())
        if batch:
            yield batch
    finally:
        await parts.aclose()  # type: ignore[attr-defined]
        if on_usage is not None:
            on_usage(normalise.usage)


async def _payloads(parts: AsyncIterator[bytes | None]) -> AsyncIterator[list[bytes] | None]:
    """The JSON payloads of each upstream part (SSE or JSON lines), None for a
    keep-alive. Reads to the end even after `[DONE]`, so the upstream connection can
    be reused."""
    splitter = LineSplitter()
    done = False
    async for part in parts:
        if part is None:
            yield None
        elif not done:
            payloads, done = _read_lines(splitter.feed(part))
            yield payloads
    if not done:
        yield _read_lines(splitter.flush())[0]


def _read_lines(lines: list[bytes]) -> tuple[list[bytes], bool]:
    """(payloads before `[DONE]`, whether `[DONE]` came)."""
    payloads = []
    for line in lines:
        if not line:
            continue  # the blank line after each SSE event
        payload = read_line(line)
        if payload is STREAM_DONE:
            return payloads, True
        if payload is not None:
            payloads.append(payload)  # type: ignore[arg-type]
    return payloads, False


# --- the two ends: one SSE body, or one folded answer ---------------------------------


class _Started(Generic[T]):
    """A stream whose first item was already read; closing it closes the stream, also
    when it was never iterated (the client left before the response started)."""

    _EMPTY: Any = object()

    def __init__(self, first: T, rest: AsyncIterator[T]) -> None:
        self._first = first
        self._rest = rest

    def __aiter__(self) -> _Started[T]:
        return self

    async def __anext__(self) -> T:
        if self._first is not self._EMPTY:
            first, self._first = self._first, self._EMPTY
            return first
        return await anext(self._rest)

    async def aclose(self) -> None:
        await self._rest.aclose()  # type: ignore[attr-defined]


async def started(items: AsyncIterator[T]) -> AsyncIterator[T]:
    """The same stream with its first item read now, so a failure to start (a
    throttle, an error the engine put first in its stream, garbage) raises here,
    before any response goes out."""
    try:
        first = await anext(items)
    except StopAsyncIteration:
        return _Started(_Started._EMPTY, items)
    except BaseException:
        await items.aclose()  # type: ignore[attr-defined]
        raise
    return _Started(first, items)


async def sse_body(items: AsyncIterator[T | None], render: Renderer[T]) -> AsyncIterator[bytes]:
    """The one SSE loop: the renderer's writes, a keep-alive for each None, a failure
    after the start as the renderer's error event, and its terminator always (a
    renderer without an error event: `StreamAborted`, and no terminator)."""
    try:
        head = render.open()
        async for item in items:
            write = render.keepalive if item is None else render.batch(item)
            if head:
                write, head = head + write, b""
            if write:
                yield write
        tail = head + render.close()
        if tail:
            yield tail
    except Exception as exc:  # a bug must still end the stream cleanly
        if not isinstance(exc, ProxyError):
            logger.exception("stream failed")
            exc = UpstreamError("The model's response could not be read.")
        failure = render.error(exc)
        if failure is None:
            logger.warning("stream cut off", extra={"error": exc.message})
            raise StreamAborted(exc.message) from exc
        if failure:
            yield failure
    finally:
        # Leaving early (client gone, error) closes the upstream stream at once.
        await items.aclose()  # type: ignore[attr-defined]
    end = render.done()
    if end:
        yield end


async def held_sse_body(
    opened: Awaitable[AsyncIterator[T | None]],
    render: Renderer[T],
    waiting: bytes,
    every: float,
) -> AsyncIterator[bytes]:
    """An SSE body whose stream cannot open yet (a model waking from zero, wake.py):
    the response has started, and `waiting` (an SSE comment, which every client
    skips) goes out at once and after each `every` seconds until `opened` gives the
    started stream, rendered then as `sse_body` renders it. If it fails, the shape's
    error event and terminator. The client leaving cancels `opened` (and so the
    wait) at once."""
    task = asyncio.ensure_future(opened)
    items: AsyncIterator[T | None] | None = None
    handed = False
    try:
        try:
            yield waiting
            while not (await asyncio.wait((task,), timeout=every))[0]:
                yield waiting
            items = task.result()
        except ProxyError as exc:
            yield render.open() + (render.error(exc) or b"") + render.done()
            return
        except Exception:  # noqa: BLE001  (logged) a bug must still end the stream cleanly
            logger.exception("stream failed to open")
            failure = UpstreamError("The model's response could not be read.")
            yield render.open() + (render.error(failure) or b"") + render.done()
            return
        handed = True
        async for write in sse_body(items, render):
            yield write
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait((task,))  # its cleanup (the wake's bookkeeping) done
        elif items is not None and not handed:
            await items.aclose()  # type: ignore[attr-defined]


def sse_response(items: AsyncIterator[T | None], render: Renderer[T]) -> StreamingResponse:
    return StreamingResponse(
        sse_body(items, render), media_type=render.media_type, headers=SSE_HEADERS
    )


class Builder(Protocol):
    def add(self, chunk: dict[str, Any]) -> None: ...


B = TypeVar("B", bound=Builder)


async def fold(batches: AsyncIterator[Batch | None]) -> CompletionBuilder:
    """A whole stream folded into one answer (`.result(model)` is the chat.completion)."""
    return await fold_into(batches, CompletionBuilder())


async def fold_into(batches: AsyncIterator[Batch | None], builder: B) -> B:
    """A whole stream fed to `builder` (an API shape's own answer builder)."""
    try:
        async for batch in batches:
            for chunk in batch or ():
                builder.add(chunk)
    finally:
        await batches.aclose()  # type: ignore[attr-defined]
    return builder
