"""A local SageMaker-runtime endpoint: what boto3 talks to when
`AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` points here.

It speaks the real wire protocol (rest-json errors with `x-amzn-ErrorType`, ModelError
with OriginalStatusCode/OriginalMessage, AWS event-stream for the streaming call) and
forwards to containers that implement the SageMaker container contract (`GET /ping`,
`POST /invocations`) on loopback ports. It enforces the InvokeEndpoint time limit and
applies injected faults (faults.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import eventstream
from .faults import Fault, FaultBook

ACCOUNT = "123456789012"
REGION = "us-east-1"
VARIANT = "AllTraffic"
# Headers of the invoke calls that reach the container (SageMaker forwards these).
_FORWARDED = ("content-type", "accept", "x-amzn-sagemaker-custom-attributes")


@dataclass
class EmulatorStats:
    """Counters tests use to see what happened upstream."""

    invocations: int = 0
    streams_opened: int = 0
    streams_finished: int = 0
    streams_cancelled: int = 0
    by_endpoint: dict[str, int] = field(default_factory=dict)

    @property
    def streams_open(self) -> int:
        return self.streams_opened - self.streams_finished - self.streams_cancelled


class Emulator:
    """State of one emulator: endpoint name -> container base URL, faults, stats."""

    def __init__(self, endpoints: dict[str, str], invoke_timeout: float = 60.0) -> None:
        self.endpoints = dict(endpoints)
        self.invoke_timeout = invoke_timeout
        self.faults = FaultBook()
        self.stats = EmulatorStats()
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.invoke_timeout, connect=5.0),
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/endpoints/{name}/invocations", self.invoke, methods=["POST"]),
                Route(
                    "/endpoints/{name}/invocations-response-stream",
                    self.invoke_stream,
                    methods=["POST"],
                ),
                Route("/_emulator/faults", self.faults_api, methods=["GET", "POST", "DELETE"]),
                Route("/_emulator/stats", self.stats_api, methods=["GET"]),
                Route("/_emulator/endpoints", self.endpoints_api, methods=["GET"]),
            ]
        )

    # --- InvokeEndpoint ------------------------------------------------------------
    async def invoke(self, request: Request) -> Response:
        name = request.path_params["name"]
        self._count(name)
        container = self.endpoints.get(name)
        if container is None:
            return endpoint_not_found(name)
        fault = self.faults.take(name, streaming=False)
        early = await self._apply_start_fault(fault, name)
        if early is not None:
            return early
        headers = _forward_headers(request)
        if headers is None:
            return invalid_headers()
        body = await request.body()
        try:
            upstream = await self.client.post(
                f"{container}/invocations",
                content=body,
                headers=headers,
                timeout=self.invoke_timeout,
            )
        except httpx.TimeoutException:
            return invocation_timed_out(name)
        except httpx.TransportError:
            return model_error(name, 500, "The container is not reachable.")
        if upstream.status_code >= 400:
            return model_error(name, upstream.status_code, upstream.text)
        headers = {"x-Amzn-Invoked-Production-Variant": VARIANT}
        if "x-amzn-sagemaker-custom-attributes" in upstream.headers:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = upstream.headers[
                "x-amzn-sagemaker-custom-attributes"
            ]
        return Response(
            upstream.content,
            media_type=upstream.headers.get("content-type", "application/json"),
            headers=headers,
        )

    # --- InvokeEndpointWithResponseStream ------------------------------------------
    async def invoke_stream(self, request: Request) -> Response:
        name = request.path_params["name"]
        self._count(name)
        container = self.endpoints.get(name)
        if container is None:
            return endpoint_not_found(name)
        fault = self.faults.take(name, streaming=True)
        early = await self._apply_start_fault(fault, name)
        if early is not None:
            return early
        headers = _forward_headers(request)
        if headers is None:
            return invalid_headers()
        body = await request.body()
        upstream_request = self.client.build_request(
            "POST", f"{container}/invocations", content=body, headers=headers
        )
        try:
            upstream = await self.client.send(upstream_request, stream=True)
        except httpx.TimeoutException:
            return invocation_timed_out(name)
        except httpx.TransportError:
            return model_error(name, 500, "The container is not reachable.")
        if upstream.status_code >= 400:
            text = (await upstream.aread()).decode(errors="replace")
            await upstream.aclose()
            return model_error(name, upstream.status_code, text)
        return StreamingResponse(
            self._event_stream(upstream, fault),
            media_type="application/vnd.amazon.eventstream",
            headers={
                "X-Amzn-SageMaker-Content-Type": upstream.headers.get(
                    "content-type", "application/octet-stream"
                ),
                "x-Amzn-Invoked-Production-Variant": VARIANT,
            },
        )

    async def _event_stream(
        self, upstream: httpx.Response, fault: Fault | None
    ) -> AsyncIterator[bytes]:
        self.stats.streams_opened += 1
        finished = False
        try:
            frames = self._frames(upstream, fault)
            if fault is not None and fault.kind == "split_http":
                async for piece in _cut_at(frames, fault.offsets()):
                    yield piece
            else:
                async for frame in frames:
                    yield frame
            finished = True
        finally:
            await upstream.aclose()
            if finished:
                self.stats.streams_finished += 1
            else:
                self.stats.streams_cancelled += 1

    async def _frames(self, upstream: httpx.Response, fault: Fault | None) -> AsyncIterator[bytes]:
        """Container bytes -> PayloadPart messages, with stream faults applied."""
        chunks: AsyncIterator[bytes] = upstream.aiter_raw()
        if fault is not None and fault.kind == "split_parts":
            chunks = _cut_at(chunks, fault.offsets())
        sent = 0
        async for chunk in chunks:
            if not chunk:
                continue
            if (
                fault is not None
                and fault.kind == "stream_error"
                and sent >= fault.int_param("after", 1)
            ):
                yield eventstream.exception_event(
                    "ModelStreamError",
                    str(fault.params.get("message", "Model stream failed")),
                    "ModelError",
                )
                return
            if fault is not None and fault.kind == "stall" and sent == fault.int_param("after", 1):
                await asyncio.sleep(fault.float_param("seconds", 1.0))
            yield eventstream.payload_part(chunk)
            sent += 1
        if fault is not None and fault.kind == "stream_error":
            # The container finished before `after` parts: fail at the end instead.
            yield eventstream.exception_event(
                "ModelStreamError",
                str(fault.params.get("message", "Model stream failed")),
                "ModelError",
            )

    # --- faults that answer before the container is called -------------------------
    async def _apply_start_fault(self, fault: Fault | None, name: str) -> Response | None:
        if fault is None:
            return None
        if fault.kind == "throttle":
            return aws_error("ThrottlingException", 400, {"message": "Rate exceeded"})
        if fault.kind == "model_error":
            status = fault.int_param("status", 500)
            message = str(fault.params.get("message", "Injected model error"))
            original = json.dumps(
                {"error": {"message": message, "type": "Error", "param": None, "code": status}}
            )
            return model_error(name, status, original)
        if fault.kind == "timeout":
            await asyncio.sleep(fault.float_param("seconds", self.invoke_timeout))
            return invocation_timed_out(name)
        if fault.kind == "not_ready":
            return aws_error(
                "ModelNotReadyException",
                429,
                {"Message": f"Model for endpoint {name} is not ready; it is scaling up."},
            )
        if fault.kind == "stall" and "after" not in fault.params:
            await asyncio.sleep(fault.float_param("seconds", 1.0))
        return None

    # --- control API -----------------------------------------------------------------
    async def faults_api(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.clear()
            return JSONResponse({"faults": []})
        if request.method == "POST":
            try:
                spec: dict[str, Any] = await request.json()
                endpoint = str(spec.pop("endpoint", "*"))
                kind = str(spec.pop("kind"))
                times = int(spec.pop("times", 1))
                self.faults.add(endpoint, kind, times, **spec)
            except (ValueError, KeyError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(
            {"faults": [f.__dict__ for f in self.faults.pending()]},
            status_code=201 if request.method == "POST" else 200,
        )

    async def stats_api(self, _: Request) -> Response:
        stats = self.stats
        return JSONResponse(
            {
                "invocations": stats.invocations,
                "streams_opened": stats.streams_opened,
                "streams_finished": stats.streams_finished,
                "streams_cancelled": stats.streams_cancelled,
                "streams_open": stats.streams_open,
                "by_endpoint": stats.by_endpoint,
            }
        )

    async def endpoints_api(self, _: Request) -> Response:
        return JSONResponse({"endpoints": sorted(self.endpoints)})

    def _count(self, name: str) -> None:
        self.stats.invocations += 1
        self.stats.by_endpoint[name] = self.stats.by_endpoint.get(name, 0) + 1


async def _cut_at(pieces: AsyncIterator[bytes], offsets: list[int]) -> AsyncIterator[bytes]:
    """Re-chunk a byte stream so that a chunk boundary falls at every offset (counted
    from the start of the stream)."""
    position = 0
    pending = list(offsets)
    async for piece in pieces:
        start = 0
        while pending and pending[0] < position + len(piece):
            cut = pending.pop(0) - position
            if cut > start:
                yield piece[start:cut]
                start = cut
        if start < len(piece):
            yield piece[start:]
        position += len(piece)


def _forward_headers(request: Request) -> dict[str, str] | None:
    """The headers SageMaker passes on, or None when one is not printable ASCII
    (SageMaker's constraint on ContentType, Accept and CustomAttributes)."""
    headers = {h: request.headers[h] for h in _FORWARDED if h in request.headers}
    if any(not v.isascii() or not v.isprintable() for v in headers.values()):
        return None
    return headers


def invalid_headers() -> Response:
    return aws_error(
        "ValidationError",
        400,
        {"Message": "ContentType, Accept and CustomAttributes must be printable ASCII."},
    )


# --- SageMaker's error shapes (rest-json: code in x-amzn-ErrorType) --------------------
def aws_error(code: str, status: int, body: dict[str, Any]) -> Response:
    return JSONResponse(
        body,
        status_code=status,
        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": _request_id()},
    )


def endpoint_not_found(name: str) -> Response:
    return aws_error(
        "ValidationError", 400, {"Message": f"Endpoint {name} of account {ACCOUNT} not found."}
    )


def model_error(name: str, original_status: int, original_message: str) -> Response:
    kind = "client" if 400 <= original_status < 500 else "server"
    return aws_error(
        "ModelError",
        424,
        {
            "ErrorCode": f"{kind.upper()}_ERROR_FROM_MODEL",
            "Message": (
                f"Received {kind} error ({original_status}) from primary with message "
                f'"{original_message}". See https://{REGION}.console.aws.amazon.com/cloudwatch/'
                f"home?region={REGION}#logEventViewer:group=/aws/sagemaker/Endpoints/{name} "
                f"in account {ACCOUNT} for more information."
            ),
            "OriginalStatusCode": original_status,
            "OriginalMessage": original_message,
            "LogStreamArn": (
                f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{name}"
            ),
        },
    )


def invocation_timed_out(name: str) -> Response:
    message = (
        "Your invocation timed out while waiting for a response from container primary. "
        "Review the latency metrics for each container in Amazon CloudWatch, resolve the "
        "issue, and try again."
    )
    response = model_error(name, 0, message)
    return response


def _request_id() -> str:
    return f"{time.time_ns():032x}"[-32:]
