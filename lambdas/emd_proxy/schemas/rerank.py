"""Rerank request in the Cohere/Jina shape (also what vLLM serves), which LangChain's
and LlamaIndex's Cohere-compatible clients send."""

from __future__ import annotations

from pydantic import Field

from .base import PermissiveModel

MAX_DOCUMENTS = 1000  # Cohere's limit


class RerankDocument(PermissiveModel):
    text: str


class RerankRequest(PermissiveModel):
    model: str = Field(min_length=1, max_length=256)
    query: str = Field(min_length=1)
    documents: list[str | RerankDocument] = Field(min_length=1, max_length=MAX_DOCUMENTS)
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = True

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]
