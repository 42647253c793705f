"""Embeddings request and answer, as in
https://platform.openai.com/docs/api-reference/embeddings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictInt, field_validator

from .base import AnswerModel, RequestModel
from .limits import UINT32_MAX

MAX_INPUTS = 2048  # OpenAI's limit per request


class EmbeddingsRequest(RequestModel):
    input: str | list[str] | list[int] | list[list[int]]
    model: str = Field(min_length=1, max_length=256)
    # At most the model's vector size, checked per model (routes/embeddings.py).
    dimensions: StrictInt | None = Field(default=None, ge=1, le=UINT32_MAX)
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(
        cls, value: str | list[str] | list[int] | list[list[int]]
    ) -> str | list[str] | list[int] | list[list[int]]:
        if isinstance(value, str):
            if not value:
                raise ValueError("must not be an empty string")
            return value
        if not value:
            raise ValueError("must not be an empty list")
        if len(value) > MAX_INPUTS:
            raise ValueError(f"at most {MAX_INPUTS} inputs per request")
        for item in value:
            if isinstance(item, str | list) and not item:
                raise ValueError("inputs must not be empty")
        return value

    def inputs(self) -> list[str] | list[list[int]]:
        """The input as a batch: a list of strings or a list of token id lists."""
        value = self.input
        if isinstance(value, str):
            return [value]
        if all(isinstance(v, int) for v in value):
            return [value]  # type: ignore[list-item]  # one input given as token ids
        return value  # type: ignore[return-value]


# The answer, fields in the order of https://platform.openai.com/docs/api-reference/embeddings/object.


class Embedding(AnswerModel):
    object: Literal["embedding"]
    embedding: list[float] | str = Field(
        description="The vector; with encoding_format=base64, its little-endian float32 "
        "bytes in base64."
    )
    index: int


class EmbeddingUsage(AnswerModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(AnswerModel):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
