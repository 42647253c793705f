"""Container answers read as JSON objects, and what a container's error means for the
client, whichever way it came: a SageMaker ModelError (the container's non-2xx status
and body), or an error object inside a 200 answer or a stream. The engine's own status
decides: a refused request is a 400 (the engine's words, sanitized), an overloaded
model a 429, a failed one a 502 whose text is logged, never forwarded.

The in-band shapes:
- vLLM, and LMI serving vLLM: `{"error": {"message", "type", "param", "code": <status>}}`
  (ErrorInfo, `create_streaming_error_response`), older `{"object": "error", "message",
  "type", "param", "code"}`;
- TGI >= 2.4 in a stream (router/src/infer/mod.rs `InferError::into_openai_event`):
  `{"error": {"message", "http_status_code": 422}}`, 422 for *every* InferError, model
  failures and overload included, so the message (the error's Display text) tells the
  kind; TGI's bodies otherwise: `{"error": "<message>", "error_type": "validation" |
  "generation" | "overloaded" | ...}` (TEI's the same, with its own types);
- LMI: Gson `{"error": "<text>", "code": <status>}`, and vLLM's returned ErrorResponse
  as its repr inside a 500 (`error=ErrorInfo(message='...', ..., code=400)`);
- FastAPI (the WhisperX DLC): `{"detail": "<text>"}` or a validation list."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic_core import from_json

from .container_text import model_failed, sanitize
from .context_length import context_overflow
from .errors import InvalidRequestError, ProxyError, RateLimitError, UpstreamError

# TGI's and TEI's `error_type`s, and the status each means for the client.
_ERROR_TYPE_STATUS = {
    "validation": 400,
    "tool_error": 400,
    "template_error": 400,
    "missing_template_variable": 400,
    "tokenizer": 400,  # TEI: the input could not be tokenized
    "empty": 400,  # TEI: empty input
    "overloaded": 429,
    "generation": 500,
    "incomplete_generation": 500,
    "incomplete_generation_stream": 500,
    "stream_serialization_error": 500,
    # TEI (router/src/http/server.rs): a backend failure is a 424, unhealthy a 503.
    "backend": 500,
    "unhealthy": 500,
}
# TGI's InferError Display texts (router/src/infer/mod.rs), for its stream error event
# whose http_status_code is always 422.
_TGI_MESSAGE_STATUS = (
    ("Input validation error:", 400),
    ("Tool error:", 400),
    ("Template error:", 400),
    ("Missing template vatiable:", 400),  # sic
    ("Model is overloaded", 429),
    ("Request failed during generation:", 500),
    ("Incomplete generation", 500),
    ("Stream event serialization error", 500),
)
# DJL LMI reports an error vLLM returned as the repr of vLLM's ErrorResponse inside a
# 500 (lmi_vllm's non-stream output formatter): vLLM's own status and param are in it.
_LMI_ERROR_INFO = re.compile(
    r"ErrorInfo\(message=(['\"])(?P<message>.*?)\1, type=[^,]*, "
    r"param=(?:(['\"])(?P<param>.*?)\3|None), code=(?P<code>\d+)\)",
    re.DOTALL,
)


def load_json_object(body: bytes, what: str) -> dict[str, Any]:
    """Parse a container's JSON, or fail: an error the engine reported inside it (see
    `container_error`), otherwise a bad upstream answer (502)."""
    try:
        parsed = from_json(body)
    except ValueError as exc:
        raise UpstreamError(f"The model returned an unreadable {what}.") from exc
    if not isinstance(parsed, dict):
        raise UpstreamError(f"The model returned an unexpected {what}.")
    if parsed.get("error") or parsed.get("object") == "error":
        raise container_error(parsed, None)
    return parsed


def container_error(
    original: str | dict[str, Any], status: int | None, *, endpoint: str | None = None
) -> ProxyError:
    """The client's error for a container's error body (`original`, text or parsed
    JSON) sent with HTTP `status` (None: inside a 200 answer or stream)."""
    raw = original if isinstance(original, str) else json.dumps(original)
    parsed = _parse(original)
    message = readable_message(parsed) if parsed is not None else raw.strip()
    # A prompt over the context, whatever status the engine gave it (LMI: a 500).
    overflow = context_overflow(message) or context_overflow(raw)
    if overflow is not None:
        return overflow
    names = (endpoint,) if endpoint else ()
    mangled = _LMI_ERROR_INFO.search(message)
    if mangled is not None and 400 <= int(mangled["code"]) < 500:
        return InvalidRequestError(sanitize(mangled["message"], names), param=mangled["param"])
    status = _status(parsed, message, status)
    if status == 429:
        return RateLimitError(sanitize(message, names) or "The model is overloaded.", retry_after=1)
    if status is not None and 400 <= status < 500:
        return InvalidRequestError(
            sanitize(message, names) or "The model rejected the request.", param=_param(parsed)
        )
    return model_failed(raw, endpoint=endpoint, status=status)


def readable_message(parsed: Any) -> str:
    """The message inside an engine's error body (vLLM, TGI, TEI, LMI, FastAPI shapes)."""
    if isinstance(parsed, dict):
        detail = _fastapi_detail(parsed.get("detail"))
        if detail:
            return detail
        inner = parsed.get("error", parsed)
        if isinstance(inner, dict):
            inner = inner.get("message") or inner.get("Message") or inner.get("error") or ""
        if isinstance(inner, str) and inner:
            return inner.strip()
    return json.dumps(parsed) if not isinstance(parsed, str) else parsed.strip()


def _parse(original: str | dict[str, Any]) -> Any:
    if not isinstance(original, str):
        return original
    try:
        return json.loads(original)
    except ValueError:
        return None


def _status(parsed: Any, message: str, sent: int | None) -> int | None:
    """The status the engine meant: TGI's and TEI's error kind first (TGI's stream says
    422 even for a model failure; its generation failure is a 424), then the HTTP
    status the body came with, then the one written inside the body."""
    if isinstance(parsed, dict):
        kind = parsed.get("error_type")
        if isinstance(kind, str) and kind in _ERROR_TYPE_STATUS:
            return _ERROR_TYPE_STATUS[kind]
        error = parsed.get("error")
        if isinstance(error, dict) and "http_status_code" in error:
            for prefix, status in _TGI_MESSAGE_STATUS:
                if message.startswith(prefix):
                    return status
    if sent is not None:
        return sent
    if isinstance(parsed, dict):
        error = parsed.get("error")
        inner = error if isinstance(error, dict) else parsed
        for key in ("http_status_code", "code"):
            if isinstance(inner.get(key), int):
                return int(inner[key])
    return None


def _param(parsed: Any) -> str | None:
    if not isinstance(parsed, dict):
        return None
    error = parsed.get("error")
    param = (error if isinstance(error, dict) else parsed).get("param")
    return param if isinstance(param, str) else None


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
