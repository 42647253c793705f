"""vLLM (SageMaker DLC, >= 0.7): `/invocations` takes the OpenAI chat body as is and
streams SSE `data:` chunks ending with `[DONE]`; a usage chunk (`choices: []`) comes
only with `stream_options.include_usage`; tool-call arguments are strings. Sources:
notes/containers.md section 1."""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json

from ..errors import UpstreamError
from ..registry import RegistryEntry
from ..sagemaker_client import UpstreamCall
from ..upstream_json import load_json_object
from .adapters import (
    AudioFile,
    EmbeddingBatch,
    EmbeddingsAdapter,
    RerankAdapter,
    Score,
    TranscriptionAdapter,
)
from .chat import ChatEngine
from .multipart import multipart_call


class VllmEngine(ChatEngine):
    """The OpenAI chat body goes through as is; chunks are already OpenAI's."""

    name = "vllm"


# --- pooling and speech routes -----------------------------------------------------
# vLLM's /invocations picks the request type from the body (chat, completion, then the
# pooling types); the DLC's Amazon Linux image also routes by CustomAttributes, which
# the Ubuntu image ignores, so both are sent. These are the only routes the proxy
# asks for (engines/custom_attributes.py holds callers of /v1/invocations to them).
VLLM_ROUTES: dict[str, tuple[str, ...]] = {
    "embeddings": ("/v1/embeddings",),
    "rerank": ("/v1/rerank",),
    "audio": ("/v1/audio/transcriptions", "/v1/audio/translations"),
}


def _route(family: str, index: int = 0) -> str:
    return f"route={VLLM_ROUTES[family][index]}"


class VllmEmbeddings(EmbeddingsAdapter):
    max_batch = 256
    accepts_token_ids = True
    # vLLM shortens natively and itself refuses `dimensions` for a model whose config
    # is not Matryoshka (is_matryoshka / matryoshka_dimensions; vllm/pooling_params.py).
    native_dimensions = True

    def build(
        self, inputs: list[str] | list[list[int]], dimensions: int | None, extra: dict[str, Any]
    ) -> UpstreamCall:
        body: dict[str, Any] = {**extra, "input": inputs, "encoding_format": "float"}
        if dimensions is not None:
            body["dimensions"] = dimensions
        return UpstreamCall(to_json(body), custom_attributes=_route("embeddings"))

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
        return UpstreamCall(to_json(body), custom_attributes=_route("rerank"))

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
        return multipart_call(audio, fields, _route("audio"))

    # vLLM serves OpenAI's /v1/audio/translations for Whisper models; the DLC's
    # CustomAttributes route reaches it as it reaches transcriptions.
    translation_refusal = None

    def build_translation(
        self, entry: RegistryEntry, audio: AudioFile, fields: list[tuple[str, str]]
    ) -> UpstreamCall:
        return multipart_call(audio, fields, _route("audio", 1))
