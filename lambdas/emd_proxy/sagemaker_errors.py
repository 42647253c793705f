"""SageMaker-runtime failures -> the error the client sees: every botocore error of the
initial call *and* of each stream step maps to the proxy's error tree. SageMaker's own
messages name the account and log stream ARNs: they are logged, never forwarded."""

from __future__ import annotations

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

from .container_text import model_failed
from .errors import (
    InternalError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelNotReadyError,
    ModelScalingFromZeroError,
    ProxyError,
    RateLimitError,
    UpstreamError,
    UpstreamTimeoutError,
)
from .log import logger
from .upstream_json import container_error

# The start of SageMaker's ValidationError message when an inference component has no
# copy to serve the call (scaled to zero, or scaling out): "Inference Component has no
# capacity to process this request. ApplicationAutoScaling may be in-progress (if
# configured) or try to increase the capacity by invoking
# UpdateInferenceComponentRuntimeConfig API."
NO_CAPACITY = "inference component has no capacity"
# Retry-After of a no-capacity error before wake.py has a better estimate.
NO_CAPACITY_RETRY_AFTER = 60

# Error codes SageMaker (or the AWS front door) uses for throttling.
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)


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
        lowered = message.lower()
        if lowered.startswith(NO_CAPACITY):
            # Checked first: a waiting matter (503), never the "not found" 404 below.
            logger.info("inference component has no capacity", extra=log_extra)
            return ModelScalingFromZeroError(
                "The model is scaling up from zero; try again shortly.",
                retry_after=NO_CAPACITY_RETRY_AFTER,
            )
        if "not found" in lowered:
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
        # The stream broke after it started: what SageMaker says names the account and
        # the log stream, and may quote the container; it is logged, never forwarded.
        return model_failed(str(error.get("Message", "")), endpoint=endpoint, streaming=True)
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
    logger.info(
        "container error",
        extra={"endpoint": endpoint, "original_status": original_status},
    )
    if original_status == 0 or (
        original_status is None and "timed out" in str(error.get("Message", ""))
    ):
        return UpstreamTimeoutError("The model did not answer within SageMaker's time limit.")
    return container_error(original, original_status, endpoint=endpoint)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
