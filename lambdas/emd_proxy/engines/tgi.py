"""Text Generation Inference (HF TGI DLC, >= 2.4; TGI is in maintenance mode):
`/invocations` takes the OpenAI chat body (Messages API) and streams SSE ending with
`[DONE]`. Quirks handled: no `developer` role, `max_tokens` only, and before 3.2.0
tool calls came as one object with `arguments` as an object (chat_stream.py turns
both into OpenAI's list of string fragments). Sources: notes/containers.md section 3
(router/src/lib.rs, server.rs, chat.rs)."""

from __future__ import annotations

from typing import Any

from ..registry import RegistryEntry
from .base import ChatEngine


class TgiEngine(ChatEngine):
    name = "tgi"

    def prepare(self, body: dict[str, Any], entry: RegistryEntry) -> dict[str, Any]:
        body["messages"] = [
            {**m, "role": "system"} if m.get("role") == "developer" else m for m in body["messages"]
        ]
        if "max_completion_tokens" in body:
            limit = body.pop("max_completion_tokens")
            body.setdefault("max_tokens", limit)
        return body

    def fix_chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        for choice in chunk.get("choices") or []:
            message = choice.get("message")
            # A non-streamed TGI answer never reaches here (we always stream), but a
            # chunk may carry `tool_calls` as a single object (before 3.2.0).
            if isinstance(message, dict) and "delta" not in choice:
                choice["delta"] = message
        return chunk
