"""One pure-ASGI middleware in front of every route: API key check on /v1, the key's
own limits when this process enforces them (`emd serve`), body size limit (413 before
the body is read when Content-Length says so, and while reading otherwise), one
structured access log line per request, and the OpenAI error shape (Anthropic's on
/v1/messages) for failures raised here. Pure ASGI because BaseHTTPMiddleware buffers
and costs."""

from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING

from pydantic_core import to_json
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ProxyError, RequestTooLargeError
from .log import logger
from .log import request_id as current_request_id
from .shapes.anthropic import error_body_for, speaks_anthropic
from .streaming import StreamAborted

if TYPE_CHECKING:
    from .limits import KeyLimiter
    from .state import Services


# A client's id is echoed only if it cannot forge log lines or headers.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def _needs_key(path: str) -> bool:
    """Every API route: /v1/..., and the Cohere-style /v2/rerank and /rerank aliases.
    /health and the OpenAPI document stay public (they reveal nothing)."""
    return path.startswith(("/v1/", "/v2/")) or path in ("/v1", "/v2", "/rerank")


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        # Per-key limits: in process under `emd serve` only. Deployed, API Gateway's
        # usage plans enforce them before the Lambda runs (settings.enforce_key_limits).
        self.limiter: KeyLimiter | None = None
        if services.settings.enforce_key_limits:
            from .limits import KeyLimiter

            self.limiter = KeyLimiter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        response_started = False
        request_id = _request_id(scope)
        scope["emd.request_id"] = request_id
        current_request_id.set(request_id)
        id_header = (b"x-request-id", request_id.encode())

        async def send_tracking(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            if _needs_key(scope["path"]):
                await self._authenticate(scope)
                if self.limiter is not None:
                    self.limiter.check(scope["emd.principal"])  # before the body is read
            receive = await self._limit_body(scope, receive)
            await self.app(scope, receive, send_tracking)
        except ProxyError as exc:
            if response_started:
                raise
            status = exc.status
            await send_error(send, exc, id_header, path=scope["path"])
        except StreamAborted:
            pass  # the body stays unfinished: the server drops the connection, as meant
        finally:
            principal = scope.get("emd.principal")
            logger.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "key_name": principal.name if principal else None,
                    "request_id": request_id,
                },
            )

    async def _authenticate(self, scope: Scope) -> None:
        keys = self.services.keys
        if keys.stale:
            await self.services.pool.run(keys.refresh)
        authorization = api_key = None
        # Anthropic's clients send the key as x-api-key: taken on their routes only.
        takes_api_key = speaks_anthropic(scope["path"])
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-api-key" and takes_api_key:
                api_key = value.decode("latin-1")
        scope["emd.principal"] = keys.authenticate(authorization, api_key)

    async def _limit_body(self, scope: Scope, receive: Receive) -> Receive:
        """Content-Length over the limit: refuse before reading. No Content-Length
        (chunked): read here, up to the limit, and replay it to the app (raising from
        inside the app's own body read would be turned into a generic 400)."""
        limit = self.services.settings.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    raise RequestTooLargeError(_too_large(limit))
                return receive  # the server enforces the declared length
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return receive
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _replay(b"", message)
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                raise RequestTooLargeError(_too_large(limit))
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return _replay(b"".join(chunks), None, receive)


def _replay(body: bytes, first: Message | None, receive: Receive | None = None) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if first is not None:
            return first
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        assert receive is not None
        return await receive()  # after the body: wait for the disconnect

    return replay


def _too_large(limit: int) -> str:
    return f"The request body is larger than the limit of {limit} bytes."


def _request_id(scope: Scope) -> str:
    """The caller's own `x-request-id` when it is a plain token (so a client can
    correlate its logs with ours), else a new one. The SDKs expose it as
    `response.request_id`."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if _REQUEST_ID.fullmatch(value):
                return value.decode()
            break
    return f"req_{uuid.uuid4().hex}"


async def send_error(send: Send, exc: ProxyError, *extra: tuple[bytes, bytes], path: str) -> None:
    body = to_json(error_body_for(path, exc))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers().items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
