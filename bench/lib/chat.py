"""The chat request every target gets, so that all of them do the same work."""

from __future__ import annotations

import json
from typing import Any

# Thirteen words: the echo model streams them back one chunk each. The first one, in
# no other part of any answer, marks the first token in any framing (SSE, JSON, AWS
# event-stream payloads).
MESSAGE = "Zephyr quick brown fox jumps over the lazy dog near the river bank."
FIRST_TOKEN = b"Zephyr"


def chat_body(
    model: str | None, *, stream: bool = False, content: str = MESSAGE, **extra: Any
) -> bytes:
    """`model` only where the target routes on it: the echo container refuses names
    other than its own, as vLLM does, so its direct callers send none."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": content}], **extra}
    if model is not None:
        body["model"] = model
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


def json_headers(key: str | None = None) -> dict[str, str]:
    """A JSON request's headers, with `key` as a Bearer token when the target wants one."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers
