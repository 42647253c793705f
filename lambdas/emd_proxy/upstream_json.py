"""Container answers read as JSON objects, with the errors containers report inside a
200 answer or a stream (vLLM's `{"object": "error"}`, TGI's `{"error", "error_type"}`)
told apart: a bad request (400) or a failed model (502)."""

from __future__ import annotations

from typing import Any

from pydantic_core import from_json

from .context_length import context_overflow
from .errors import InvalidRequestError, UpstreamError

# TGI's `error_type`s that mean the request was wrong, not the model.
_CLIENT_ERROR_TYPES = frozenset({"validation", "tool_error"})


def load_json_object(body: bytes, what: str) -> dict[str, Any]:
    """Parse a container's JSON, or fail: a bad request the engine reported (400),
    otherwise a bad upstream answer (502)."""
    try:
        parsed = from_json(body)
    except ValueError as exc:
        raise UpstreamError(f"The model returned an unreadable {what}.") from exc
    if not isinstance(parsed, dict):
        raise UpstreamError(f"The model returned an unexpected {what}.")
    error = parsed.get("error")
    if error or parsed.get("object") == "error":
        message = (
            error.get("message") if isinstance(error, dict) else (error or parsed.get("message"))
        )
        overflow = context_overflow(str(message))
        if overflow is not None:
            raise overflow
        status = None
        if isinstance(error, dict):
            status = error.get("http_status_code", error.get("code"))
        elif isinstance(parsed.get("code"), int):
            status = parsed["code"]  # vLLM's older top-level error object
        # A request error: TGI names it by type, or (in a stream) by an HTTP status;
        # vLLM's error objects carry the status as `code`.
        if parsed.get("error_type") in _CLIENT_ERROR_TYPES or (
            isinstance(status, int) and 400 <= status < 500
        ):
            param = error.get("param") if isinstance(error, dict) else None
            raise InvalidRequestError(str(message), param=param if isinstance(param, str) else None)
        raise UpstreamError(f"The model failed: {message or 'unknown error'}")
    return parsed
