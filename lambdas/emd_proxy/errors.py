"""The proxy's error tree: every failure a client can see, one class per row of the
error table in DESIGN.md.

    ProxyError                       (status, type, code)
    ├── InvalidRequestError          400 invalid_request_error
    │   ├── ModelNotFoundError       404 invalid_request_error / model_not_found
    │   ├── RouteNotFoundError       404 invalid_request_error / not_found
    │   ├── MethodNotAllowedError    405 invalid_request_error / method_not_allowed
    │   └── RequestTooLargeError     413 invalid_request_error / request_too_large
    ├── AuthenticationError          401 authentication_error / invalid_api_key
    ├── RateLimitError               429 rate_limit_error / rate_limit_exceeded
    ├── UpstreamError                502 upstream_error / bad_upstream_response
    ├── ModelNotReadyError           503 service_unavailable / model_not_ready
    │   └── ModelScalingFromZeroError 503 service_unavailable / model_scaling_from_zero
    ├── UpstreamTimeoutError         504 timeout / upstream_timeout
    └── InternalError                500 internal_error (a bug of ours; details logged only)

Errors are raised anywhere and rendered once, by `error_body`, into OpenAI's
`{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

from typing import Any


class ProxyError(Exception):
    """Base of every error the proxy answers with."""

    status: int = 500
    type: str = "internal_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


class InvalidRequestError(ProxyError):
    """The request is malformed or asks for something the model cannot do."""

    status = 400
    type = "invalid_request_error"


class ModelNotFoundError(InvalidRequestError):
    """Unknown model id, or one the key may not see."""

    status = 404
    code = "model_not_found"


class RouteNotFoundError(InvalidRequestError):
    """No such route."""

    status = 404
    code = "not_found"


class MethodNotAllowedError(InvalidRequestError):
    """The route exists but not with this method."""

    status = 405
    code = "method_not_allowed"


class RequestTooLargeError(InvalidRequestError):
    """The body is over the size limit."""

    status = 413
    code = "request_too_large"


class AuthenticationError(ProxyError):
    """Missing or wrong API key."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class RateLimitError(ProxyError):
    """SageMaker throttled the call, or one of our limits did."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(ProxyError):
    """The container failed or answered something we cannot read."""

    status = 502
    type = "upstream_error"
    code = "bad_upstream_response"


class ModelNotReadyError(ProxyError):
    """The endpoint is being created or updated, or scaling from zero."""

    status = 503
    type = "service_unavailable"
    code = "model_not_ready"


class ModelScalingFromZeroError(ModelNotReadyError):
    """The model's inference component is at zero copies: SageMaker refuses every
    invoke until a copy is up (minutes); the proxy wakes it (wake.py)."""

    code = "model_scaling_from_zero"


class UpstreamTimeoutError(ProxyError):
    """The endpoint did not answer in time."""

    status = 504
    type = "timeout"
    code = "upstream_timeout"


class InternalError(ProxyError):
    """A bug of ours. The message sent to clients never carries details."""

    status = 500
    type = "internal_error"
    code = "internal_error"


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
