"""The servers bench/compare.py measures, each run as its own process:

    python bench/targets.py direct  --port P                 echo/local, plain OpenAI server
    python bench/targets.py floor   --port P --upstream URL  bare pass-through proxy
                            [--client httpx|aiohttp]          (its one shared client)
    python bench/targets.py stub    --port P                 instant SageMaker-runtime
    python bench/targets.py backend --ready-file F           emulator + echo container

Everything listens on 127.0.0.1 only. `backend` binds free loopback ports itself and
writes `{"emulator_url", "registry"}` to the ready file once it answers. Every server
runs until SIGTERM/SIGINT.

Our proxy itself is not started here: compare.py runs it exactly as the Lambda does
(`python -m uvicorn --factory emd_proxy.main:create_app`, see lambdas/run.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Before emd_proxy (imported by emd.local) creates its Logger: the backend's per-request
# INFO lines would only cost CPU that the measured proxies then compete with.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from lib import HOST

# Response headers a pass-through must not copy: they describe the hop, not the body
# (the floor's own server frames the body again).
_HOP_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"date",
        b"server",
    }
)


def _serve(app: Starlette, port: int) -> None:
    """uvicorn with uvloop + httptools (what `emd serve` and the Lambda get too)."""
    from emd.local.servers import bind_socket

    sock = bind_socket(HOST, port)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
        timeout_keep_alive=75,
    )
    uvicorn.Server(config).run(sockets=[sock])


# --- direct: echo/local as an OpenAI-compatible server --------------------------------
def direct_app() -> Starlette:
    """The echo container's own handler at OpenAI's path: the vLLM contract *is* the
    OpenAI chat API, so `direct` answers byte for byte what the container behind the
    emulator answers (same answer logic, same `echo_delay_ms`)."""
    from emd.local.containers.echo import EchoContainer

    echo = EchoContainer()

    async def models(_: Request) -> Response:
        return JSONResponse(
            {"object": "list", "data": [{"id": "echo", "object": "model", "owned_by": "bench"}]}
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", echo.invocations, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", echo.ping, methods=["GET"]),
        ]
    )


# --- floor: the bare pass-through -----------------------------------------------------
def floor_app(upstream: str) -> Starlette:
    """What any proxy must at least do: read the body, forward it with one shared async
    HTTP client, relay the answer (streamed as it comes). No auth, no validation."""
    import contextlib
    from collections.abc import AsyncIterator

    import httpx

    state: dict[str, httpx.AsyncClient] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(
            base_url=upstream,
            timeout=httpx.Timeout(60.0),
            # One client for every request, sized above the bench's 32 clients.
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
        ) as client:
            state["client"] = client
            yield

    async def forward(request: Request) -> Response:
        client = state["client"]
        upstream_request = client.build_request(
            request.method,
            request.url.path,
            content=await request.body(),
            headers={"content-type": request.headers.get("content-type", "application/json")},
        )
        answer = await client.send(upstream_request, stream=True)
        headers = {
            k.decode(): v.decode() for k, v in answer.headers.raw if k.lower() not in _HOP_HEADERS
        }
        if answer.headers.get("content-type", "").startswith("text/event-stream"):

            async def relay() -> AsyncIterator[bytes]:
                try:
                    async for chunk in answer.aiter_raw():
                        yield chunk
                finally:
                    await answer.aclose()

            return StreamingResponse(relay(), status_code=answer.status_code, headers=headers)
        body = await answer.aread()
        await answer.aclose()
        return Response(body, status_code=answer.status_code, headers=headers)

    return Starlette(
        routes=[Route("/v1/chat/completions", forward, methods=["POST"])], lifespan=lifespan
    )


def floor_aiohttp_app(upstream: str) -> Starlette:
    """The same pass-through with one shared aiohttp session instead of httpx (the
    client our proxy uses): the issue's faster floor (about 0.7 ms against 0.9)."""
    import contextlib
    from collections.abc import AsyncIterator

    import aiohttp

    state: dict[str, aiohttp.ClientSession] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256),
            timeout=aiohttp.ClientTimeout(total=60.0),
            skip_auto_headers=("Accept", "Accept-Encoding"),
            auto_decompress=False,
        ) as session:
            state["session"] = session
            yield

    async def forward(request: Request) -> Response:
        answer = await state["session"].post(
            upstream + request.url.path,
            data=await request.body(),
            headers={"content-type": request.headers.get("content-type", "application/json")},
        )
        headers = {
            k.decode(): v.decode() for k, v in answer.raw_headers if k.lower() not in _HOP_HEADERS
        }
        if answer.headers.get("content-type", "").startswith("text/event-stream"):

            async def relay() -> AsyncIterator[bytes]:
                try:
                    async for chunk in answer.content.iter_any():
                        yield chunk
                finally:
                    answer.release()

            return StreamingResponse(relay(), status_code=answer.status, headers=headers)
        body = await answer.read()
        answer.release()
        return Response(body, status_code=answer.status, headers=headers)

    return Starlette(
        routes=[Route("/v1/chat/completions", forward, methods=["POST"])], lifespan=lifespan
    )


# --- stub: an instant SageMaker-runtime endpoint ----------------------------------------
def stub_app() -> Starlette:
    """InvokeEndpoint and InvokeEndpointWithResponseStream answered in-process by the
    echo container's own handler, framed as the emulator frames them (same response
    headers, same ModelError shape, the PayloadParts the emulator makes of the echo's
    answer: an instant one whole in one part, a paced one a part per chunk), but
    without the emulator's HTTP hop to a container. It is to our proxy what `direct` is
    to LiteLLM and the floor: a backend that costs next to nothing, so what is measured
    through it is the proxy (the emulator's hop and the container's streamed answer
    cost CPU that, on 2 cores, the proxy competes with)."""
    from collections.abc import AsyncIterator

    from emd.local import eventstream
    from emd.local.containers.echo import EchoContainer
    from emd.local.emulator import VARIANT, model_error

    echo = EchoContainer()
    variant = {"x-Amzn-Invoked-Production-Variant": VARIANT}

    async def invoke(request: Request) -> Response:
        answer = await echo.invocations(request)
        if answer.status_code >= 400:
            return model_error(
                request.path_params["name"], answer.status_code, bytes(answer.body).decode()
            )
        return Response(answer.body, media_type=answer.media_type, headers=variant)

    async def invoke_stream(request: Request) -> Response:
        answer = await echo.invocations(request)
        if answer.status_code >= 400:
            return model_error(
                request.path_params["name"], answer.status_code, bytes(answer.body).decode()
            )

        headers = {"X-Amzn-SageMaker-Content-Type": answer.media_type or "", **variant}
        if not isinstance(answer, StreamingResponse):
            # An instant answer, written at once: one part in a plain response.
            return Response(
                eventstream.payload_part(bytes(answer.body)),
                media_type=eventstream.MEDIA_TYPE,
                headers=headers,
            )

        async def frames() -> AsyncIterator[bytes]:
            async for chunk in answer.body_iterator:
                yield eventstream.payload_part(
                    chunk if isinstance(chunk, bytes) else str(chunk).encode()
                )

        return StreamingResponse(frames(), media_type=eventstream.MEDIA_TYPE, headers=headers)

    return Starlette(
        routes=[
            Route("/endpoints/{name}/invocations", invoke, methods=["POST"]),
            Route("/endpoints/{name}/invocations-response-stream", invoke_stream, methods=["POST"]),
        ]
    )


# --- backend: ours' SageMaker side ------------------------------------------------------
def run_backend(ready_file: Path) -> None:
    """The SageMaker-runtime emulator and the echo container, as `emd serve` starts them,
    in this process (the proxy runs in another, as it would against real SageMaker)."""
    from emd.local.stack import LocalStack

    stack = LocalStack(["echo/local"]).start()
    stopped = threading.Event()

    def stop(*_: Any) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    registry = json.loads(stack.registry.to_json())
    # Written whole, then renamed: the parent never reads half a file.
    partial = ready_file.with_suffix(".partial")
    partial.write_text(json.dumps({"emulator_url": stack.emulator_url, "registry": registry}))
    partial.rename(ready_file)
    try:
        stopped.wait()
    finally:
        stack.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["direct", "floor", "stub", "backend"])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (direct, floor)")
    parser.add_argument("--upstream", help="base URL the floor forwards to")
    parser.add_argument("--client", choices=["httpx", "aiohttp"], default="httpx", help="floor's")
    parser.add_argument("--ready-file", type=Path, help="where backend writes its URL")
    args = parser.parse_args(argv)
    if args.kind == "backend":
        if args.ready_file is None:
            parser.error("backend needs --ready-file")
        run_backend(args.ready_file)
    elif args.kind == "direct":
        _serve(direct_app(), args.port)
    elif args.kind == "stub":
        _serve(stub_app(), args.port)
    else:
        if not args.upstream:
            parser.error("floor needs --upstream")
        app = floor_app if args.client == "httpx" else floor_aiohttp_app
        _serve(app(args.upstream), args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
