"""One adapter per serving container and family; `adapter()` picks the one a model's
engine uses, or answers 400 when that engine cannot serve the family."""

from __future__ import annotations

from typing import Any, Literal, overload

from ..errors import InvalidRequestError
from ..registry import RegistryEntry
from .adapters import EmbeddingsAdapter, RerankAdapter, TranscriptionAdapter
from .chat import ChatEngine
from .hf_asr import HfAsrTranscription
from .lmi import LmiEngine
from .tei import TeiEmbeddings, TeiRerank
from .tgi import TgiEngine
from .vllm import VllmEmbeddings, VllmEngine, VllmRerank, VllmTranscription
from .whisperx import WhisperxTranscription

_ADAPTERS: dict[str, dict[str, Any]] = {
    "chat": {"vllm": VllmEngine(), "tgi": TgiEngine(), "lmi": LmiEngine()},
    "embeddings": {"tei": TeiEmbeddings(), "vllm": VllmEmbeddings()},
    "rerank": {"tei": TeiRerank(), "vllm": VllmRerank()},
    "audio": {
        "whisperx": WhisperxTranscription(),
        "vllm": VllmTranscription(),
        "hf_asr": HfAsrTranscription(),
    },
}


@overload
def adapter(entry: RegistryEntry, family: Literal["chat"]) -> ChatEngine: ...
@overload
def adapter(entry: RegistryEntry, family: Literal["embeddings"]) -> EmbeddingsAdapter: ...
@overload
def adapter(entry: RegistryEntry, family: Literal["rerank"]) -> RerankAdapter: ...
@overload
def adapter(entry: RegistryEntry, family: Literal["audio"]) -> TranscriptionAdapter: ...
def adapter(entry: RegistryEntry, family: str) -> Any:
    found = _ADAPTERS.get(family, {}).get(entry.engine)
    if found is None:
        raise InvalidRequestError(
            f"The model `{entry.id}` runs on {entry.engine}, which has no {family} adapter.",
            param="model",
        )
    return found


def chat_engine(entry: RegistryEntry) -> ChatEngine:
    return adapter(entry, "chat")


__all__ = [
    "ChatEngine",
    "EmbeddingsAdapter",
    "RerankAdapter",
    "TranscriptionAdapter",
    "adapter",
    "chat_engine",
]
