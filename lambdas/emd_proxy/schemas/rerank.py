"""Rerank request and answer in the Cohere/Jina shape (also what vLLM serves), which
LangChain's and LlamaIndex's Cohere-compatible clients send
(https://docs.cohere.com/reference/rerank, https://jina.ai/reranker/)."""

from __future__ import annotations

from pydantic import Field, StrictBool, StrictInt

from .base import AnswerModel, PermissiveModel, RequestModel
from .limits import UINT32_MAX

MAX_DOCUMENTS = 1000  # Cohere's limit


class RerankDocument(PermissiveModel):
    text: str


class RerankRequest(RequestModel):
    model: str = Field(min_length=1, max_length=256)
    query: str = Field(min_length=1)
    documents: list[str | RerankDocument] = Field(min_length=1, max_length=MAX_DOCUMENTS)
    top_n: StrictInt | None = Field(default=None, ge=1, le=UINT32_MAX)
    return_documents: StrictBool = True

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


# The answer: Cohere's `id` and `results`, Jina's and vLLM's `model` and `usage`.


class RerankResultDocument(AnswerModel):
    text: str


class RerankResult(AnswerModel):
    index: int = Field(description="The document's position in the request.")
    relevance_score: float
    # Absent with return_documents=false.
    document: RerankResultDocument | None = None


class RerankUsage(AnswerModel):
    prompt_tokens: int
    total_tokens: int


class RerankResponse(AnswerModel):
    id: str
    model: str
    results: list[RerankResult] = Field(description="Most relevant first, at most top_n.")
    usage: RerankUsage
