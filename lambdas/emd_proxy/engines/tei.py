"""Text Embeddings Inference (SageMaker TEI image, 1.8/1.9). /invocations is bound to
the model's type: embed `{"inputs": [...]}` -> bare `[[f32, ...], ...]`; rerank
`{"query", "texts"}` -> `[{"index", "score"}]` sorted by score. Sources:
notes/containers.md section 4 (router/src/http/types.rs, server.rs)."""

from __future__ import annotations

from typing import Any

from pydantic_core import from_json, to_json

from ..errors import UpstreamError
from ..sagemaker_client import UpstreamCall
from .adapters import EmbeddingBatch, EmbeddingsAdapter, RerankAdapter, Score

# Request fields of TEI's embed and rerank that a client may pass through.
_EMBED_EXTRAS = ("truncate", "truncation_direction", "prompt_name", "normalize")
_RERANK_EXTRAS = ("truncate", "truncation_direction", "raw_scores")


def _json(body: bytes, what: str) -> Any:
    try:
        return from_json(body)
    except ValueError as exc:
        raise UpstreamError(f"The model returned unreadable {what}.") from exc


class TeiEmbeddings(EmbeddingsAdapter):
    max_batch = 32
    # TEI's InputType is a string or a list of token ids (router/src/http/types.rs);
    # ids are decoded with the model's tokenizer and encoded again (core/src/
    # tokenization.rs), so they must be that tokenizer's ids.
    accepts_token_ids = True
    # `dimensions` since TEI 1.8.0 (PR #676, "Support MRL"): keeps the first N values,
    # then normalises (core/src/infer.rs); N above the model's size is TEI's validation
    # error. TEI does it for any model: the route allows it only for Matryoshka ones.
    native_dimensions = True

    def build(
        self, inputs: list[str] | list[list[int]], dimensions: int | None, extra: dict[str, Any]
    ) -> UpstreamCall:
        body: dict[str, Any] = {"inputs": inputs}
        if dimensions is not None:
            body["dimensions"] = dimensions
        body.update({k: extra[k] for k in _EMBED_EXTRAS if k in extra})
        return UpstreamCall(to_json(body))

    def parse(self, body: bytes, count: int) -> EmbeddingBatch:
        vectors = _json(body, "embeddings")
        if (
            not isinstance(vectors, list)
            or len(vectors) != count
            or not all(isinstance(v, list) for v in vectors)
        ):
            raise UpstreamError("The model returned embeddings of an unexpected shape.")
        # SageMaker passes no response headers, so TEI's token counts never arrive.
        return EmbeddingBatch(vectors, None)


class TeiRerank(RerankAdapter):
    max_batch = 32

    def build(self, query: str, texts: list[str], extra: dict[str, Any]) -> UpstreamCall:
        body: dict[str, Any] = {"query": query, "texts": texts, "return_text": False}
        body.update({k: extra[k] for k in _RERANK_EXTRAS if k in extra})
        return UpstreamCall(to_json(body))

    def parse(self, body: bytes) -> tuple[list[Score], int | None]:
        ranks = _json(body, "scores")
        try:
            return [Score(int(r["index"]), float(r["score"])) for r in ranks], None
        except (TypeError, KeyError, ValueError) as exc:
            raise UpstreamError("The model returned scores of an unexpected shape.") from exc
