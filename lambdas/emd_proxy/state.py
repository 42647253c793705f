"""The per-process services every request needs (settings, registry, keys, the
SageMaker client, the worker pool), built once by `create_app()` and kept on
`app.state`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.requests import Request

from .auth import KeyStore, Principal
from .registry import Registry
from .sagemaker_client import SageMakerRuntime, UpstreamCall, UpstreamResponse, UpstreamStream
from .settings import Settings
from .workers import WorkerPool


@dataclass
class Services:
    settings: Settings
    registry: Registry
    keys: KeyStore
    sagemaker: SageMakerRuntime
    pool: WorkerPool

    async def invoke(self, endpoint: str, call: UpstreamCall) -> UpstreamResponse:
        return await self.sagemaker.invoke(
            endpoint,
            call.body,
            content_type=call.content_type,
            accept=call.accept,
            custom_attributes=call.custom_attributes,
        )

    async def invoke_all(
        self, endpoint: str, calls: list[UpstreamCall], concurrency: int = 4
    ) -> list[UpstreamResponse]:
        """Several calls (batches of one request), a few at a time, answers in order.
        The first failure, or the caller's cancellation (its client left), cancels
        every call still running or waiting, and they have all ended when this
        returns: nobody would read their answers."""
        limit = asyncio.Semaphore(concurrency)

        async def one(call: UpstreamCall) -> UpstreamResponse:
            async with limit:
                return await self.invoke(endpoint, call)

        if len(calls) == 1:
            return [await self.invoke(endpoint, calls[0])]
        tasks = [asyncio.ensure_future(one(c)) for c in calls]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            if not all(t.done() for t in tasks):
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks)

    async def open_stream(
        self, endpoint: str, call: UpstreamCall
    ) -> tuple[UpstreamStream, AsyncIterator[bytes | None]]:
        """The stream and its parts (None where a keep-alive is due); a failure to
        start raises here, before any response goes out."""
        stream = await self.sagemaker.open_stream(
            endpoint,
            call.body,
            content_type=call.content_type,
            accept=call.accept,
            custom_attributes=call.custom_attributes,
        )
        return stream, stream.parts(self.settings.keepalive_seconds)

    async def aclose(self) -> None:
        await self.sagemaker.aclose()
        self.pool.shutdown()


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def principal(request: Request) -> Principal:
    """The caller, set by the middleware on every /v1 request."""
    return request.scope["emd.principal"]  # type: ignore[no-any-return]
