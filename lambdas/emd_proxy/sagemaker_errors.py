"""SageMaker-runtime failures -> the error the client sees: every botocore error of the
initial call *and* of each stream step maps to the proxy's error tree. SageMaker's own
messages name the account and log stream ARNs: they are logged, never forwarded."""

from __future__ import annotations

import json
import re
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from .context_length import context_overflow
from .errors import (
    InternalError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelNotReadyError,
    ProxyError,
    RateLimitError,
    UpstreamError,
    UpstreamTimeoutError,
)
from .log import logger

# Error codes SageMaker (or the AWS front door) uses for throttling.
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
_MAX_UPSTREAM_MESSAGE = 1000
# AWS ARNs and 12-digit account ids: SageMaker's texts (and some containers') name them.
# DJL LMI reports an error vLLM returned as the repr of vLLM's ErrorResponse inside a
# 500 (lmi_vllm's non-stream output formatter): vLLM's own status and param are in it.
_LMI_ERROR_INFO = re.compile(
    r"ErrorInfo\(message=(['\"])(?P<message>.*?)\1, type=[^,]*, "
    r"param=(?:(['\"])(?P<param>.*?)\3|None), code=(?P<code>\d+)\)",
    re.DOTALL,
)
_AWS_DETAILS = re.compile(r"arn:aws[\w-]*:[^\s\"'<>,;\\]*|(?<!\d)\d{12}(?!\d)")


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
            # "Endpoint <name> of account <id> not found.": deleted or never deployed.
            # Not a 503: waiting does not bring it back (and clients would retry).
            logger.warning("endpoint not found", extra=log_extra)
            return ModelNotFoundError(
                f"The endpoint {endpoint} does not exist (never deployed, deleted, or still "
                "being created): deploy it, or remove the model from the registry.",
                param="model",
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
    # A prompt over the context, whatever status the engine gave it (LMI: a 500).
    overflow = context_overflow(message) or context_overflow(original)
    if overflow is not None:
        return overflow
    mangled = _LMI_ERROR_INFO.search(message)
    if mangled is not None and 400 <= int(mangled["code"]) < 500:
        return InvalidRequestError(mangled["message"], param=mangled["param"])
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
        detail = _fastapi_detail(parsed.get("detail"))
        if detail:
            return detail[:_MAX_UPSTREAM_MESSAGE]
        inner = parsed.get("error", parsed)
        if isinstance(inner, dict):
            inner = inner.get("message") or inner.get("Message") or inner.get("error") or ""
        if isinstance(inner, str) and inner:
            return inner[:_MAX_UPSTREAM_MESSAGE]
    return text[:_MAX_UPSTREAM_MESSAGE]


def _fastapi_detail(detail: Any) -> str:
    """FastAPI's error body (the WhisperX DLC's): `{"detail": "text"}`, or for a
    request-validation error `{"detail": [{"loc": [...], "msg": ...}, ...]}`."""
    if isinstance(detail, str):
        return detail.strip()
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict) and isinstance(item.get("msg"), str):
                loc = [str(p) for p in item.get("loc") or [] if p not in ("body", "query")]
                parts.append(f"{'.'.join(loc)}: {item['msg']}" if loc else item["msg"])
        return "; ".join(parts)
    return ""


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
