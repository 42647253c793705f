"""Blocking upstream work off the event loop.

`WorkerPool.run` runs a boto3 call in the proxy's bounded worker pool. `open_stream`
opens an upstream event stream *and* reads it in the same worker task (one thread
hop per request, not one per call), handing parts to the loop in batches: the thread
wakes the loop only when the loop has drained what came before. The loop stays free
to send keep-alives and to notice a client that went away; leaving the iteration
early closes the upstream stream at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from .sagemaker_client import UpstreamStream

T = TypeVar("T")

_END = object()


@dataclass(frozen=True)
class _Opened:
    stream: UpstreamStream | None
    error: BaseException | None


class _Inbox:
    """Thread -> loop hand-off: the worker appends; one wake-up per batch."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[object] = deque()
        self._lock = threading.Lock()
        self._ready = asyncio.Event()
        self._wake_pending = False

    def put(self, item: object) -> None:  # worker thread
        with self._lock:
            self._items.append(item)
            if self._wake_pending:
                return
            self._wake_pending = True
        # A closed loop (RuntimeError) means nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._ready.set)

    async def take(self, wait: float | None) -> list[object] | None:
        """What has arrived (possibly nothing: a wake-up can trail a batch already
        taken); None when `wait` seconds pass first."""
        try:
            async with asyncio.timeout(wait):
                await self._ready.wait()
        except TimeoutError:
            return None
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._wake_pending = False
            self._ready.clear()
        return items


class WorkerPool:
    """The bounded thread pool for every blocking call of the proxy."""

    def __init__(self, max_workers: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="emd-io")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def open_stream(
        self, open_fn: Callable[[], UpstreamStream], keepalive_seconds: float
    ) -> tuple[UpstreamStream, AsyncIterator[bytes | None]]:
        """Opens the stream in a worker (its failure raises here, before any response
        starts) and returns it with its parts: bytes, or None after
        `keepalive_seconds` of silence."""
        inbox = _Inbox(asyncio.get_running_loop())
        stop = threading.Event()

        def work() -> None:
            try:
                stream = open_fn()
            except BaseException as exc:  # noqa: BLE001 - raised on the loop
                inbox.put(_Opened(None, exc))
                return
            if stop.is_set():  # nobody waits for it any more
                stream.close()
                return
            inbox.put(_Opened(stream, None))
            try:
                for part in stream:
                    if stop.is_set():
                        return
                    inbox.put(part)
            except BaseException as exc:  # noqa: BLE001 - raised on the loop
                if not stop.is_set():
                    inbox.put(exc)
                return
            inbox.put(_END)

        self._executor.submit(contextvars.copy_context().run, work)
        items: list[object] = []
        try:
            while not items:
                items = await inbox.take(None) or []
        except BaseException:
            stop.set()
            raise
        opened = items[0]
        assert isinstance(opened, _Opened)
        if opened.error is not None:
            raise opened.error
        assert opened.stream is not None
        return opened.stream, _parts(inbox, items[1:], opened.stream, stop, keepalive_seconds)


async def _parts(
    inbox: _Inbox,
    pending: list[object],
    stream: UpstreamStream,
    stop: threading.Event,
    keepalive_seconds: float,
) -> AsyncIterator[bytes | None]:
    try:
        while True:
            for item in pending:
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
            taken = await inbox.take(keepalive_seconds)
            if taken is None:
                yield None
            pending = taken or []
    finally:
        stop.set()
        stream.close()


async def collect(parts: list[bytes]) -> AsyncIterator[bytes | None]:
    """Parts already read (a non-streaming request) as the stream flow expects them."""
    for part in parts:
        yield part
