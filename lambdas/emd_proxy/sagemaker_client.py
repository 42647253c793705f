"""The one AWS boundary: calls to `sagemaker-runtime`, and every botocore failure
mapped to the proxy's error tree (for the initial call *and* each stream step).

The client is created once per process. Its calls block, so callers run them in the
proxy's worker threads (see streaming.py), never on the event loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from .errors import (
    InternalError,
    InvalidRequestError,
    ModelNotReadyError,
    ProxyError,
    RateLimitError,
    UpstreamError,
    UpstreamTimeoutError,
)
from .log import logger

if TYPE_CHECKING:
    from .settings import Settings

# Error codes SageMaker (or the AWS front door) uses for throttling.
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
_MAX_UPSTREAM_MESSAGE = 1000
# AWS ARNs and 12-digit account ids: SageMaker's texts (and some containers') name them.
_AWS_DETAILS = re.compile(r"arn:aws[\w-]*:[^\s\"'<>,;\\]*|(?<!\d)\d{12}(?!\d)")


@dataclass(frozen=True)
class UpstreamResponse:
    body: bytes
    content_type: str


class UpstreamStream:
    """The parts of an `InvokeEndpointWithResponseStream` answer, as raw bytes.

    Iterating blocks; `close()` may be called from another thread and makes a blocked
    read return at once (the socket is shut down, not only closed)."""

    def __init__(self, response: dict[str, Any], endpoint: str) -> None:
        self._body = response["Body"]
        self.content_type: str = response.get("ContentType") or "application/octet-stream"
        self._endpoint = endpoint
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for event in self._body:
                part = event.get("PayloadPart")
                if part is not None:
                    data = part.get("Bytes", b"")
                    if data:
                        yield data
        except Exception as exc:
            if self.closed:
                return
            raise map_upstream_error(exc, self._endpoint) from exc

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        raw = getattr(self._body, "_raw_stream", None)
        try:
            if raw is not None and hasattr(raw, "shutdown"):
                raw.shutdown()
            self._body.close()
        except Exception:  # noqa: BLE001 - closing a dead connection may fail; nothing to do
            logger.debug("closing upstream stream failed", exc_info=True)


class SageMakerRuntime:
    """Thin typed wrapper around the boto3 client with error mapping."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self._client = client or boto3.session.Session().client(
            "sagemaker-runtime",
            config=Config(
                retries={"total_max_attempts": settings.upstream_max_attempts, "mode": "standard"},
                max_pool_connections=settings.max_concurrency,
                connect_timeout=settings.connect_timeout_seconds,
                read_timeout=settings.upstream_timeout_seconds,
                tcp_keepalive=True,
            ),
        )

    def invoke(
        self,
        endpoint: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        accept: str | None = None,
        custom_attributes: str | None = None,
    ) -> UpstreamResponse:
        kwargs = _invoke_kwargs(endpoint, body, content_type, accept, custom_attributes)
        try:
            response = self._client.invoke_endpoint(**kwargs)
            payload = response["Body"].read()
        except Exception as exc:
            raise map_upstream_error(exc, endpoint) from exc
        return UpstreamResponse(payload, response.get("ContentType") or "application/json")

    def invoke_stream(
        self,
        endpoint: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        accept: str | None = None,
        custom_attributes: str | None = None,
    ) -> UpstreamStream:
        kwargs = _invoke_kwargs(endpoint, body, content_type, accept, custom_attributes)
        try:
            response = self._client.invoke_endpoint_with_response_stream(**kwargs)
        except Exception as exc:
            raise map_upstream_error(exc, endpoint) from exc
        return UpstreamStream(response, endpoint)


def _invoke_kwargs(
    endpoint: str,
    body: bytes,
    content_type: str,
    accept: str | None,
    custom_attributes: str | None,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"EndpointName": endpoint, "Body": body, "ContentType": content_type}
    if accept:
        kwargs["Accept"] = accept
    if custom_attributes:
        kwargs["CustomAttributes"] = custom_attributes
    return kwargs


def map_upstream_error(exc: BaseException, endpoint: str) -> ProxyError:
    """botocore failure -> the error the client sees. SageMaker's own messages name the
    account and log stream ARNs, so they are logged, never forwarded."""
    if isinstance(exc, ProxyError):
        return exc
    if isinstance(exc, ClientError):
        return _map_client_error(exc, endpoint)
    if isinstance(exc, ReadTimeoutError):
        return UpstreamTimeoutError("The model did not answer in time.")
    if isinstance(exc, NoCredentialsError):
        logger.error("no AWS credentials for sagemaker-runtime")
        return InternalError("The gateway has no AWS credentials.")
    if isinstance(exc, BotoConnectionError | BotoCoreError):
        logger.warning(
            "sagemaker-runtime call failed", extra={"endpoint": endpoint, "error": repr(exc)}
        )
        return UpstreamError("The model's endpoint could not be reached.")
    logger.warning("upstream stream failed", extra={"endpoint": endpoint, "error": repr(exc)})
    return UpstreamError("The model's response was interrupted.")


def _map_client_error(exc: ClientError, endpoint: str) -> ProxyError:
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    log_extra = {"endpoint": endpoint, "aws_error_code": code, "aws_status": status}
    if code == "ModelError":
        return _map_model_error(exc, endpoint)
    if code in THROTTLING_CODES:
        logger.info("sagemaker throttled", extra=log_extra)
        return RateLimitError("The model is receiving too many requests.", retry_after=1)
    if code == "ModelNotReadyException":
        return ModelNotReadyError("The model is not ready yet; try again.", retry_after=10)
    if code == "ValidationError":
        message = str(error.get("Message", ""))
        if "not found" in message.lower():
            logger.warning("endpoint not found", extra=log_extra)
            return ModelNotReadyError(
                "The model's endpoint does not exist (not deployed yet, or deleted).",
                retry_after=30,
            )
        logger.warning("sagemaker rejected the call", extra={**log_extra, "aws_message": message})
        return InvalidRequestError("SageMaker rejected the request.")
    if code == "ServiceUnavailable":
        return ModelNotReadyError("SageMaker is unavailable; try again.", retry_after=5)
    if code == "ModelStreamError":
        message = _container_message(str(error.get("Message", "")))
        return UpstreamError(f"The model failed while streaming: {message}")
    if code in {"AccessDeniedException", "AccessDenied", "UnrecognizedClientException"}:
        logger.error("not allowed to invoke the endpoint", extra=log_extra)
        return UpstreamError("The gateway is not allowed to invoke this model's endpoint.")
    logger.warning("sagemaker error", extra=log_extra)
    return UpstreamError("The model's endpoint failed.")


def _map_model_error(exc: ClientError, endpoint: str) -> ProxyError:
    """The container answered non-2xx (or not at all within the 60 s limit)."""
    error = exc.response.get("Error", {})
    original_status = _int(
        error.get("OriginalStatusCode") or exc.response.get("OriginalStatusCode")
    )
    original = str(error.get("OriginalMessage") or exc.response.get("OriginalMessage") or "")
    message = _container_message(original)
    logger.info(
        "container error",
        extra={"endpoint": endpoint, "original_status": original_status},
    )
    if original_status == 0 or (
        original_status is None and "timed out" in str(error.get("Message", ""))
    ):
        return UpstreamTimeoutError("The model did not answer within SageMaker's time limit.")
    if original_status == 429:
        return RateLimitError(message or "The model is overloaded.", retry_after=1)
    if original_status is not None and 400 <= original_status < 500:
        return InvalidRequestError(message or "The model rejected the request.")
    return UpstreamError(
        f"The model failed ({original_status or 'no status'}): {message}"
        if message
        else "The model failed."
    )


def _container_message(original: str) -> str:
    """The readable message inside a container's error body (vLLM, TGI and LMI shapes),
    without AWS account ids and ARNs (the only upstream text clients ever see)."""
    return _AWS_DETAILS.sub("<redacted>", _readable_message(original))


def _readable_message(original: str) -> str:
    text = original.strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:_MAX_UPSTREAM_MESSAGE]
    if isinstance(parsed, dict):
        inner = parsed.get("error", parsed)
        if isinstance(inner, dict):
            inner = inner.get("message") or inner.get("Message") or inner.get("error") or ""
        if isinstance(inner, str) and inner:
            return inner[:_MAX_UPSTREAM_MESSAGE]
    return text[:_MAX_UPSTREAM_MESSAGE]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
