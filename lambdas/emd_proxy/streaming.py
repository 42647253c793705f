"""Blocking upstream work off the event loop.

`run_blocking` runs a boto3 call in the proxy's bounded worker pool. `iterate_parts`
reads an upstream event stream in a worker thread and hands the parts to the loop
through a queue, so the loop stays free to send keep-alives and to notice a client
that went away; leaving the iteration early closes the upstream stream at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .sagemaker_client import UpstreamStream

T = TypeVar("T")

_END = object()


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

    async def iterate_parts(
        self, stream: UpstreamStream, keepalive_seconds: float
    ) -> AsyncIterator[bytes | None]:
        """Yields each upstream part, or None after `keepalive_seconds` of silence."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def pump() -> None:
            try:
                for part in stream:
                    if stop.is_set():
                        return
                    loop.call_soon_threadsafe(queue.put_nowait, part)
            except BaseException as exc:  # noqa: BLE001 - handed to the loop, raised there
                if not stop.is_set():
                    loop.call_soon_threadsafe(queue.put_nowait, exc)
                return
            loop.call_soon_threadsafe(queue.put_nowait, _END)

        self._executor.submit(contextvars.copy_context().run, pump)
        try:
            while True:
                try:
                    async with asyncio.timeout(keepalive_seconds):
                        item = await queue.get()
                except TimeoutError:
                    yield None
                    continue
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            stop.set()
            stream.close()
