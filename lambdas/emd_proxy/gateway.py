"""What every request needs, built once per process and kept on `app.state`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial

from starlette.requests import Request

from .auth import KeyStore, Principal
from .engines.families import UpstreamCall
from .registry import Registry
from .sagemaker_client import SageMakerRuntime, UpstreamResponse, UpstreamStream
from .settings import Settings
from .streaming import WorkerPool


@dataclass
class Gateway:
    settings: Settings
    registry: Registry
    keys: KeyStore
    sagemaker: SageMakerRuntime
    pool: WorkerPool

    async def invoke(self, endpoint: str, call: UpstreamCall) -> UpstreamResponse:
        """InvokeEndpoint in a worker thread."""
        return await self.pool.run(
            self.sagemaker.invoke,
            endpoint,
            call.body,
            content_type=call.content_type,
            accept=call.accept,
            custom_attributes=call.custom_attributes,
        )

    async def invoke_all(
        self, endpoint: str, calls: list[UpstreamCall], concurrency: int = 4
    ) -> list[UpstreamResponse]:
        """Several calls (batches of one request), a few at a time, answers in order."""
        limit = asyncio.Semaphore(concurrency)

        async def one(call: UpstreamCall) -> UpstreamResponse:
            async with limit:
                return await self.invoke(endpoint, call)

        return list(await asyncio.gather(*(one(c) for c in calls)))

    def _stream_opener(self, endpoint: str, call: UpstreamCall) -> Callable[[], UpstreamStream]:
        return partial(
            self.sagemaker.invoke_stream,
            endpoint,
            call.body,
            content_type=call.content_type,
            accept=call.accept,
            custom_attributes=call.custom_attributes,
        )

    async def open_stream(
        self, endpoint: str, call: UpstreamCall
    ) -> tuple[UpstreamStream, AsyncIterator[bytes | None]]:
        """InvokeEndpointWithResponseStream, opened and read by one worker task;
        failures to start raise here, before any response goes out."""
        return await self.pool.open_stream(
            self._stream_opener(endpoint, call), self.settings.keepalive_seconds
        )

    async def read_stream(self, endpoint: str, call: UpstreamCall) -> list[bytes]:
        """The whole streamed answer, read in one worker call (no per-part hand-off:
        nobody is waiting for the parts one by one)."""
        opener = self._stream_opener(endpoint, call)
        return await self.pool.run(lambda: list(opener()))


def gateway(request: Request) -> Gateway:
    return request.app.state.gateway  # type: ignore[no-any-return]


def principal(request: Request) -> Principal:
    """The caller, set by the middleware on every /v1 request."""
    return request.scope["emd.principal"]  # type: ignore[no-any-return]
