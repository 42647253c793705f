"""The per-process services every request needs (settings, registry, keys, the
SageMaker client, the worker pool, the waker of scaled-to-zero models), built once by
`create_app()` and kept on `app.state`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from starlette.requests import Request

from .auth import KeyStore, Principal
from .errors import ModelScalingFromZeroError
from .registry import Registry, RegistryEntry
from .sagemaker_client import SageMakerRuntime, UpstreamCall, UpstreamResponse, UpstreamStream
from .settings import Settings
from .wake import Waker
from .workers import WorkerPool

T = TypeVar("T")


@dataclass
class Services:
    settings: Settings
    registry: Registry
    keys: KeyStore
    sagemaker: SageMakerRuntime
    pool: WorkerPool
    waker: Waker

    # Every call to a model goes through these three. A model scaled to zero
    # (`entry.inference_component`) refuses calls while it has no copy: the call
    # then waits for the wake (wake.py) up to `wake_wait_seconds`, or raises
    # ModelScalingFromZeroError at once where the caller holds the client itself
    # (`wait=False`: an SSE stream sends keep-alives meanwhile). `request` only lends
    # the Lambda's deadline to a wait.

    async def invoke(
        self, entry: RegistryEntry, call: UpstreamCall, request: Request | None = None
    ) -> UpstreamResponse:
        return await self._waking(entry, partial(self._invoke, entry, call), request)

    async def _invoke(self, entry: RegistryEntry, call: UpstreamCall) -> UpstreamResponse:
        return await self.sagemaker.invoke(
            entry.endpoint,
            call.body,
            content_type=call.content_type,
            accept=call.accept,
            custom_attributes=call.custom_attributes,
            inference_component=entry.inference_component,
        )

    async def invoke_all(
        self,
        entry: RegistryEntry,
        calls: list[UpstreamCall],
        concurrency: int = 4,
        request: Request | None = None,
    ) -> list[UpstreamResponse]:
        """Several calls (batches of one request), a few at a time, answers in order.
        The first failure, or the caller's cancellation (its client left), cancels
        every call still running or waiting, and they have all ended when this
        returns: nobody would read their answers."""
        limit = asyncio.Semaphore(concurrency)

        async def one(call: UpstreamCall) -> UpstreamResponse:
            async with limit:
                return await self.invoke(entry, call, request)

        if len(calls) == 1:
            return [await self.invoke(entry, calls[0], request)]
        tasks = [asyncio.ensure_future(one(c)) for c in calls]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            if not all(t.done() for t in tasks):
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks)

    async def open_stream(
        self,
        entry: RegistryEntry,
        call: UpstreamCall,
        *,
        wait: bool = True,
        request: Request | None = None,
    ) -> tuple[UpstreamStream, AsyncIterator[bytes | None]]:
        """The stream and its parts (None where a keep-alive is due); a failure to
        start raises here, before any response goes out."""
        stream = await self._waking(entry, partial(self._open_stream, entry, call), request, wait)
        return stream, stream.parts(self.settings.keepalive_seconds)

    async def _waking(
        self,
        entry: RegistryEntry,
        attempt: Callable[[], Awaitable[T]],
        request: Request | None,
        wait: bool = True,
    ) -> T:
        """`attempt` (one call to `entry`), or, refused for no capacity, the same call
        once the model has woken (up to `wake_wait_seconds`; `wait=False` raises)."""
        try:
            result = await attempt()
        except ModelScalingFromZeroError:
            if not wait:
                raise
            return await self.waker.hold(entry, attempt, self.settings.wake_wait_seconds, request)
        if entry.inference_component is not None:
            self.waker.succeeded(entry)
        return result

    async def _open_stream(self, entry: RegistryEntry, call: UpstreamCall) -> UpstreamStream:
        return await self.sagemaker.open_stream(
            entry.endpoint,
            call.body,
            content_type=call.content_type,
            accept=call.accept,
            custom_attributes=call.custom_attributes,
            inference_component=entry.inference_component,
        )

    async def aclose(self) -> None:
        await self.sagemaker.aclose()
        self.pool.shutdown()


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def principal(request: Request) -> Principal:
    """The caller, set by the middleware on every /v1 request."""
    return request.scope["emd.principal"]  # type: ignore[no-any-return]
