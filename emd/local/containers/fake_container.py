"""The SageMaker container contract every fake chat engine shares (`GET|POST /ping`,
`POST /invocations`) and the pacing of its answers: `echo_delay_ms` in the request
body, or `delay` (seconds) given to the container, spaces the generated chunks (and
delays a non-streamed answer by as much), for benchmarks and keep-alive tests.

An unpaced stream is ready at once and goes out in one write, as a server writes what
it has ready; a paced one goes out chunk by chunk, each when it is generated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .vllm_routes import SageMakerRouteMiddleware

Endpoint = Callable[[Request], Awaitable[Response]]


def sagemaker_app(ping: Endpoint, invocations: Endpoint, *, vllm_dlc: bool = False) -> Starlette:
    """The routes SageMaker calls (vLLM's router also answers POST /ping); `vllm_dlc`
    adds the vLLM DLC's CustomAttributes routing (vllm_routes.py)."""
    middleware = [Middleware(SageMakerRouteMiddleware)] if vllm_dlc else []
    return Starlette(
        routes=[
            Route("/ping", ping, methods=["GET", "POST"]),
            Route("/invocations", invocations, methods=["POST"]),
        ],
        middleware=middleware,
    )


class FakeChatContainer:
    served_model_name = "echo"
    # Whether this fake is the vLLM DLC, which routes by CustomAttributes.
    vllm_dlc = False

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def app(self) -> Starlette:
        return sagemaker_app(self.ping, self.invocations, vllm_dlc=self.vllm_dlc)

    async def ping(self, _: Request) -> Response:
        return Response(status_code=200)

    async def invocations(self, request: Request) -> Response:
        return await self.answer(await request.body())

    async def answer(self, raw: bytes) -> Response:
        raise NotImplementedError

    def pace(self, body: Any) -> float:
        """Seconds between generated chunks for this request."""
        if isinstance(body, dict) and isinstance(body.get("echo_delay_ms"), (int, float)):
            return float(body["echo_delay_ms"]) / 1000
        return self.delay

    @staticmethod
    async def wait(delay: float, steps: int) -> None:
        if delay and steps:
            await asyncio.sleep(delay * steps)

    @classmethod
    def stream(
        cls, frames: Iterable[tuple[bytes, bool]], delay: float, tail: bytes, media_type: str
    ) -> Response:
        """A streamed answer: `frames` (bytes, whether generated) then `tail`."""
        if not delay:
            return Response(b"".join(frame for frame, _ in frames) + tail, media_type=media_type)
        return StreamingResponse(cls.paced(frames, delay, tail), media_type=media_type)

    @staticmethod
    async def paced(
        frames: Iterable[tuple[bytes, bool]], delay: float, tail: bytes = b""
    ) -> AsyncIterator[bytes]:
        """The frames, each generated one (flag True) after `delay`, then `tail`."""
        for frame, generated in frames:
            if delay and generated:
                await asyncio.sleep(delay)
            yield frame
        if tail:
            yield tail
