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
from .families import (
    AudioFile,
    EmbeddingBatch,
    EmbeddingsAdapter,
    RerankAdapter,
    Score,
    TranscriptionAdapter,
    UpstreamCall,
)
from .multipart import multipart_call


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


# --- pooling and speech routes -----------------------------------------------------
# vLLM's /invocations picks the request type from the body (chat, completion, then the
# pooling types); the DLC's Amazon Linux image also routes by CustomAttributes, which
# the Ubuntu image ignores, so both are sent.


class VllmEmbeddings(EmbeddingsAdapter):
    max_batch = 256
    accepts_token_ids = True
    native_dimensions = True

    def build(
        self, inputs: list[str] | list[list[int]], dimensions: int | None, extra: dict[str, Any]
    ) -> UpstreamCall:
        body: dict[str, Any] = {**extra, "input": inputs, "encoding_format": "float"}
        if dimensions is not None:
            body["dimensions"] = dimensions
        return UpstreamCall(to_json(body), custom_attributes="route=/v1/embeddings")

    def parse(self, body: bytes, count: int) -> EmbeddingBatch:
        response = load_json_object(body, "embeddings")
        try:
            data = sorted(response["data"], key=lambda d: d["index"])
            vectors = [d["embedding"] for d in data]
        except (KeyError, TypeError) as exc:
            raise UpstreamError("The model returned embeddings of an unexpected shape.") from exc
        if len(vectors) != count:
            raise UpstreamError("The model returned the wrong number of embeddings.")
        usage = response.get("usage") or {}
        return EmbeddingBatch(vectors, usage.get("prompt_tokens"))


class VllmRerank(RerankAdapter):
    max_batch = 1000

    def build(self, query: str, texts: list[str], extra: dict[str, Any]) -> UpstreamCall:
        body = {**extra, "query": query, "documents": texts}
        return UpstreamCall(to_json(body), custom_attributes="route=/v1/rerank")

    def parse(self, body: bytes) -> tuple[list[Score], int | None]:
        response = load_json_object(body, "scores")
        try:
            scores = [
                Score(int(r["index"]), float(r["relevance_score"])) for r in response["results"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamError("The model returned scores of an unexpected shape.") from exc
        return scores, (response.get("usage") or {}).get("total_tokens")


class VllmTranscription(TranscriptionAdapter):
    def build(
        self, entry: RegistryEntry, audio: AudioFile, fields: list[tuple[str, str]]
    ) -> UpstreamCall:
        return multipart_call(audio, fields, "route=/v1/audio/transcriptions")
