"""vLLM (SageMaker DLC, >= 0.7): `/invocations` takes the OpenAI chat body as is and
streams SSE `data:` chunks ending with `[DONE]`; a usage chunk (`choices: []`) comes
only with `stream_options.include_usage`. Sources: notes/containers.md section 1."""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json

from ..errors import UpstreamError
from ..registry import RegistryEntry
from ..schemas.chat import ChatCompletionRequest
from .base import ChatEngine, load_json_object


class VllmEngine(ChatEngine):
    name = "vllm"

    def build_payload(self, request: ChatCompletionRequest, entry: RegistryEntry) -> bytes:
        body: dict[str, Any] = {**entry.defaults, **request.model_dump(exclude_unset=True)}
        # The served name inside the container is not the public id; vLLM accepts a
        # request without `model`.
        body.pop("model", None)
        if request.stream:
            # Always ask for usage (recorded per key); stripped unless the client asked.
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return to_json(body)

    def parse_response(self, body: bytes, entry: RegistryEntry) -> dict[str, Any]:
        completion = load_json_object(body, "completion")
        if not isinstance(completion.get("choices"), list):
            raise UpstreamError("The model returned a completion without choices.")
        completion["model"] = entry.id
        return completion

    def parse_chunk(self, payload: bytes, entry: RegistryEntry) -> dict[str, Any] | None:
        chunk = load_json_object(payload, "stream chunk")
        chunk["model"] = entry.id
        return chunk
