"""A local SageMaker-runtime endpoint: what boto3 talks to when
`AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` points here.

It speaks the real wire protocol (rest-json errors with `x-amzn-ErrorType`, ModelError
with OriginalStatusCode/OriginalMessage, AWS event-stream for the streaming call) and
forwards to containers that implement the SageMaker container contract (`GET /ping`,
`POST /invocations`) on loopback ports. It enforces the InvokeEndpoint time limit and
applies injected faults (faults.py).

PayloadParts: each one carries whatever container bytes have arrived when the emulator
reads, as a proxy forwards what each socket read returns (SageMaker's parts align with
nothing). A slow container's chunks go out one part each, the moment they arrive; an
instant container's whole answer usually goes out as one part, and an answer the
container wrote with a length (all at once) always does. Faults keep their
meaning: `split_parts` offsets count container bytes (cuts on top of the coalescing),
`split_http` offsets count event-stream bytes, and the faults that count parts
(`stream_error` and `stall` with `after`) see one part per record the container
streams (an SSE event, or a line of JSON lines), so "after N parts" means after N
chunks of the answer, however the container wrote them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from emd_proxy.disconnect import CLIENT_CLOSED_REQUEST, ClientDisconnected, until_disconnected

from . import eventstream
from .components import ACCOUNT, NO_CAPACITY, REGION, VARIANT, Components, Lease
from .faults import Fault, FaultBook

__all__ = ["ACCOUNT", "REGION", "VARIANT", "Emulator"]
# Headers of the invoke calls that reach the container (SageMaker forwards these).
_FORWARDED = ("content-type", "accept", "x-amzn-sagemaker-custom-attributes")
_COMPONENT_HEADER = "x-amzn-sagemaker-inference-component"
_CONNECT_TIMEOUT = 5.0
_STREAM_FAILED = "Model stream failed"
_STREAM_TIMED_OUT = "The model did not send the rest of its response in time."
_STREAM_BROKEN = "The connection to the model was closed before its response ended."


@dataclass
class EmulatorStats:
    """Counters tests use to see what happened upstream."""

    invocations: int = 0
    streams_opened: int = 0
    streams_finished: int = 0
    streams_cancelled: int = 0
    # Calls whose answer has not started (an InvokeEndpoint until it is answered, a
    # stream until its event stream starts: then streams_open counts it), and those
    # whose caller closed the connection first (the call was cancelled then).
    calls_in_flight: int = 0
    calls_abandoned: int = 0
    # Invokes refused because their inference component had no copy (SageMaker's
    # NoCapacityInvocationFailures metric).
    no_capacity_failures: int = 0
    by_endpoint: dict[str, int] = field(default_factory=dict)

    @property
    def streams_open(self) -> int:
        return self.streams_opened - self.streams_finished - self.streams_cancelled


class Emulator:
    """State of one emulator: endpoint name -> container base URL, faults, stats."""

    def __init__(
        self,
        endpoints: dict[str, str],
        invoke_timeout: float = 60.0,
        components: Components | None = None,
    ) -> None:
        self.endpoints = dict(endpoints)
        # With scale to zero, the endpoints' inference components: every invoke names
        # one, and one with no copy refuses it.
        self.components = components
        self.invoke_timeout = invoke_timeout
        self.faults = FaultBook()
        self.stats = EmulatorStats()
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """Created on first use: aiohttp binds a session to the running loop."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0),
                # The container gets the caller's headers, not a client's defaults (an
                # Accept-Encoding would let it compress what SageMaker passes through).
                skip_auto_headers=("Accept", "Accept-Encoding", "Content-Type", "User-Agent"),
                auto_decompress=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: Starlette) -> AsyncIterator[None]:
        yield
        await self.aclose()

    def app(self) -> Starlette:
        """Serve it with lifespan on: shutdown closes the container connections."""
        return Starlette(
            lifespan=self._lifespan,
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
            ],
        )

    # --- a call ends when its caller leaves, as SageMaker's does ----------------------
    async def _unless_abandoned(
        self, request: Request, answer: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """The call's answer; if the caller closes the connection before it starts,
        the call is cancelled (its container connection closed) and counted."""
        self.stats.calls_in_flight += 1
        try:
            await request.body()  # the listener may take `receive` only after it
            return await until_disconnected(request.receive, answer(request))
        except ClientDisconnected:
            self.stats.calls_abandoned += 1
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        finally:
            self.stats.calls_in_flight -= 1

    async def invoke(self, request: Request) -> Response:
        return await self._unless_abandoned(request, self._invoke)

    async def invoke_stream(self, request: Request) -> Response:
        return await self._unless_abandoned(request, self._invoke_stream)

    # --- InvokeEndpoint ------------------------------------------------------------
    async def _invoke(self, request: Request) -> Response:
        name = request.path_params["name"]
        self._count(name)
        if name not in self.endpoints:
            return endpoint_not_found(name)
        lease = self._lease(request, name)
        if isinstance(lease, Response):
            return lease
        try:
            return await self._invoke_copy(request, name)
        finally:
            if lease is not None:
                lease.release()

    async def _invoke_copy(self, request: Request, name: str) -> Response:
        container = self.endpoints[name]
        fault = self.faults.take(name, streaming=False)
        early = await self._apply_start_fault(fault, name)
        if early is not None:
            return early
        headers = _forward_headers(request)
        if headers is None:
            return invalid_headers()
        body = await request.body()
        # SageMaker's limit is on the whole answer, not on each read.
        timeout = aiohttp.ClientTimeout(total=self.invoke_timeout, connect=_CONNECT_TIMEOUT)
        try:
            async with self.session.post(
                f"{container}/invocations", data=body, headers=headers, timeout=timeout
            ) as upstream:
                content = await upstream.read()
        except TimeoutError:
            return invocation_timed_out(name)
        except aiohttp.ClientError:
            return model_error(name, 500, "The container is not reachable.")
        if upstream.status >= 400:
            return model_error(name, upstream.status, content.decode(errors="replace"))
        headers = {"x-Amzn-Invoked-Production-Variant": VARIANT}
        if "x-amzn-sagemaker-custom-attributes" in upstream.headers:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = upstream.headers[
                "x-amzn-sagemaker-custom-attributes"
            ]
        return Response(
            content,
            media_type=upstream.headers.get("content-type", "application/json"),
            headers=headers,
        )

    # --- InvokeEndpointWithResponseStream ------------------------------------------
    async def _invoke_stream(self, request: Request) -> Response:
        name = request.path_params["name"]
        self._count(name)
        if name not in self.endpoints:
            return endpoint_not_found(name)
        lease = self._lease(request, name)
        if isinstance(lease, Response):
            return lease
        try:
            response = await self._invoke_stream_copy(request, name, lease)
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        if lease is not None:
            if isinstance(response, StreamingResponse):
                # The stream releases it when it ends; this covers a stream never read.
                response.background = BackgroundTask(lease.release)
            else:
                lease.release()
        return response

    async def _invoke_stream_copy(
        self, request: Request, name: str, lease: Lease | None
    ) -> Response:
        container = self.endpoints[name]
        fault = self.faults.take(name, streaming=True)
        early = await self._apply_start_fault(fault, name)
        if early is not None:
            return early
        headers = _forward_headers(request)
        if headers is None:
            return invalid_headers()
        body = await request.body()
        # A stream may run past the invoke limit as long as the container keeps talking.
        timeout = aiohttp.ClientTimeout(
            total=None, connect=_CONNECT_TIMEOUT, sock_read=self.invoke_timeout
        )
        try:
            upstream = await self.session.post(
                f"{container}/invocations", data=body, headers=headers, timeout=timeout
            )
        except TimeoutError:
            return invocation_timed_out(name)
        except aiohttp.ClientError:
            return model_error(name, 500, "The container is not reachable.")
        if upstream.status >= 400:
            try:
                text = (await upstream.read()).decode(errors="replace")
            finally:
                upstream.close()
            return model_error(name, upstream.status, text)
        headers = {
            "X-Amzn-SageMaker-Content-Type": upstream.headers.get(
                "content-type", "application/octet-stream"
            ),
            "x-Amzn-Invoked-Production-Variant": VARIANT,
        }
        frames = self._event_stream(upstream, fault, lease)
        if _written_whole(upstream, fault):
            # One part (or the error its read ended with), and no stream to keep open.
            body = b"".join([frame async for frame in frames])
            return Response(body, media_type=eventstream.MEDIA_TYPE, headers=headers)
        return StreamingResponse(frames, media_type=eventstream.MEDIA_TYPE, headers=headers)

    async def _event_stream(
        self, upstream: aiohttp.ClientResponse, fault: Fault | None, lease: Lease | None = None
    ) -> AsyncIterator[bytes]:
        self.stats.streams_opened += 1
        finished = False
        try:
            frames = self._frames(_container_bytes(upstream, fault), fault)
            if fault is not None and fault.kind == "split_http":
                frames = _cut_at(frames, fault.offsets())
            # A container that goes silent past the limit or drops the connection
            # mid-answer ends the stream with SageMaker's ModelStreamError codes.
            try:
                async for frame in frames:
                    yield frame
            except TimeoutError:
                yield _model_stream_error("ModelInvocationTimeExceeded", _STREAM_TIMED_OUT)
            except aiohttp.ClientError:
                yield _model_stream_error("StreamBroken", _STREAM_BROKEN)
            finished = True
        finally:
            # Closing drops the connection: a container still generating stops at once.
            upstream.close()
            if lease is not None:
                lease.release()
            if finished:
                self.stats.streams_finished += 1
            else:
                self.stats.streams_cancelled += 1

    @staticmethod
    async def _frames(chunks: AsyncIterator[bytes], fault: Fault | None) -> AsyncIterator[bytes]:
        """Container bytes -> PayloadPart messages, with the faults that count parts."""
        if fault is None or not _counts_parts(fault):
            async for chunk in chunks:
                yield eventstream.payload_part(chunk)
            return
        after = fault.int_param("after", 1)
        sent = 0
        async for chunk in chunks:
            if fault.kind == "stream_error" and sent >= after:
                yield _stream_error(fault)
                return
            if fault.kind == "stall" and sent == after:
                await asyncio.sleep(fault.float_param("seconds", 1.0))
            yield eventstream.payload_part(chunk)
            sent += 1
        if fault.kind == "stream_error":
            # The container finished before `after` parts: fail at the end instead.
            yield _stream_error(fault)

    # --- inference components -------------------------------------------------------
    def _lease(self, request: Request, endpoint: str) -> Lease | Response | None:
        """None when the endpoint has no inference components; else a hold on a copy
        of the one the call names, or SageMaker's refusal."""
        component = request.headers.get(_COMPONENT_HEADER)
        names = self.components.on_endpoint(endpoint) if self.components is not None else ()
        if not names:
            # SageMaker's own refusal (quoted by SDK users: LiteLLM's tests carry it).
            return _component_not_allowed() if component else None
        if not component:
            return aws_error(
                "ValidationError",
                400,
                {
                    "ErrorCode": "INFERENCE_COMPONENT_NAME_MISSING",
                    "Message": (
                        "Inference Component Name header is required for endpoints to which "
                        "you plan to deploy inference components. Please include Inference "
                        "Component Name header or consider using SageMaker models."
                    ),
                },
            )
        if component not in names:
            # SageMaker's wording for this one was not found; shaped as its others.
            return aws_error(
                "ValidationError",
                400,
                {
                    "Message": f"Inference Component {component} of endpoint {endpoint} "
                    f"of account {ACCOUNT} not found."
                },
            )
        lease = self.components.acquire(component)
        if lease is None:
            self.stats.no_capacity_failures += 1
            return aws_error("ValidationError", 400, {"Message": NO_CAPACITY})
        return lease

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
                "calls_in_flight": stats.calls_in_flight,
                "calls_abandoned": stats.calls_abandoned,
                "no_capacity_failures": stats.no_capacity_failures,
                "by_endpoint": stats.by_endpoint,
            }
        )

    async def endpoints_api(self, _: Request) -> Response:
        return JSONResponse({"endpoints": sorted(self.endpoints)})

    def _count(self, name: str) -> None:
        self.stats.invocations += 1
        self.stats.by_endpoint[name] = self.stats.by_endpoint.get(name, 0) + 1


def _container_bytes(upstream: aiohttp.ClientResponse, fault: Fault | None) -> AsyncIterator[bytes]:
    """The container's answer as PayloadPart payloads: whatever has arrived at each read,
    as a proxy forwards what each socket read returns."""
    if _written_whole(upstream, fault):
        return _whole(upstream)
    if fault is not None and _counts_parts(fault):
        return _records(upstream)
    pieces: AsyncIterator[bytes] = upstream.content.iter_any()
    if fault is not None and fault.kind == "split_parts":
        return _cut_at(pieces, fault.offsets())
    return pieces


def _written_whole(upstream: aiohttp.ClientResponse, fault: Fault | None) -> bool:
    """The container wrote its whole answer at once (it has a length), and no fault
    shapes its parts."""
    return fault is None and upstream.content_length is not None


async def _whole(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The whole answer as one payload, however many reads it arrives in."""
    content = await upstream.read()
    if content:
        yield content


async def _records(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """One part per streamed record (an SSE event ends with a blank line, a JSON line
    with its newline), so that "after N parts" counts the same chunks of an answer
    whether the container wrote it at once or chunk by chunk."""
    content_type = upstream.headers.get("content-type", "")
    end = b"\n\n" if content_type.startswith("text/event-stream") else b"\n"
    pending = b""
    async for piece in upstream.content.iter_any():
        pending += piece
        *records, pending = pending.split(end)
        for record in records:
            yield record + end
    if pending:
        yield pending


def _counts_parts(fault: Fault) -> bool:
    """A stall without `after` silences the container before its answer instead."""
    return fault.kind == "stream_error" or (fault.kind == "stall" and "after" in fault.params)


def _stream_error(fault: Fault) -> bytes:
    return _model_stream_error("ModelError", str(fault.params.get("message", _STREAM_FAILED)))


def _model_stream_error(code: str, message: str) -> bytes:
    return eventstream.exception_event("ModelStreamError", message, code)


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


def _component_not_allowed() -> Response:
    return aws_error(
        "ValidationError",
        400,
        {
            "Message": (
                "Inference Component Name header is not allowed for endpoints to which you "
                "dont plan to deploy inference components. Please remove the Inference "
                "Component Name header and try again."
            )
        },
    )


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
