"""What vLLM's OpenAI server sends, shared by the local vLLM-contract containers: ids,
SSE framing and vLLM's error body (vllm-project/vllm serve/engine/protocol.py
`ErrorResponse`, vLLM >= 0.9 shape)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.responses import JSONResponse


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def dumps(payload: Any) -> str:
    """JSON as pydantic's `model_dump_json` writes it: compact, UTF-8 unescaped."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def sse(payload: dict[str, Any]) -> bytes:
    return f"data: {dumps(payload)}\n\n".encode()


SSE_DONE = b"data: [DONE]\n\n"


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    kind = {400: "BadRequestError", 404: "NotFoundError"}.get(status, "InternalServerError")
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


def error(status: int, message: str, param: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param), status_code=status)
