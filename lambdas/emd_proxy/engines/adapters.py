"""The bases of the non-chat adapters (embeddings, rerank, transcription): each turns
our request into one container call (`UpstreamCall`) and the container's answer back
into plain values. Invoking, batching and the OpenAI response shape live in the
routes, once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..registry import RegistryEntry
from ..sagemaker_client import UpstreamCall


@dataclass(frozen=True)
class EmbeddingBatch:
    vectors: list[list[float]]
    prompt_tokens: int | None  # None: the engine does not say


class EmbeddingsAdapter:
    # Inputs per container call (TEI's MAX_CLIENT_BATCH_SIZE default is 32).
    max_batch: int = 32
    accepts_token_ids: bool = True
    # Whether the engine itself can shorten vectors (`dimensions`); otherwise the
    # proxy truncates and renormalises. Either way only for models the catalog flags
    # `matryoshka` (routes/embeddings.py).
    native_dimensions: bool = False

    def build(
        self, inputs: list[str] | list[list[int]], dimensions: int | None, extra: dict[str, Any]
    ) -> UpstreamCall:
        raise NotImplementedError

    def parse(self, body: bytes, count: int) -> EmbeddingBatch:
        raise NotImplementedError


@dataclass(frozen=True)
class Score:
    index: int
    score: float


class RerankAdapter:
    max_batch: int = 32

    def build(self, query: str, texts: list[str], extra: dict[str, Any]) -> UpstreamCall:
        raise NotImplementedError

    def parse(self, body: bytes) -> tuple[list[Score], int | None]:
        """Scores (indexes into the texts sent) and the token count if known."""
        raise NotImplementedError


@dataclass(frozen=True)
class AudioFile:
    data: bytes
    filename: str
    content_type: str


@dataclass(frozen=True)
class Transcript:
    body: bytes
    content_type: str


class TranscriptionAdapter:
    response_formats: frozenset[str] = frozenset({"json", "text", "srt", "vtt", "verbose_json"})
    # What a streamed transcription asks the container for: the engines here answer
    # whole, so the route renders the answer as delta events, one per segment when the
    # format has segments (verbose_json), else one for the whole text.
    stream_format: str = "json"
    # Why this engine cannot translate to English (/v1/audio/translations), or None
    # when it can (a model must also be deployed for it: registry feature `translate`).
    translation_refusal: str | None = "it cannot be asked to translate"

    def build(
        self, entry: RegistryEntry, audio: AudioFile, fields: list[tuple[str, str]]
    ) -> UpstreamCall:
        raise NotImplementedError

    def build_translation(
        self, entry: RegistryEntry, audio: AudioFile, fields: list[tuple[str, str]]
    ) -> UpstreamCall:
        """The container call of a translation (to English); the route has checked
        that the model translates."""
        raise NotImplementedError

    def parse(self, body: bytes, content_type: str, response_format: str) -> Transcript:
        return Transcript(body, content_type)
