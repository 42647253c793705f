"""One adapter per serving container; `chat_engine` picks the one a model runs on."""

from __future__ import annotations

from ..errors import InvalidRequestError
from ..registry import RegistryEntry
from .base import ChatEngine
from .vllm import VllmEngine

_CHAT_ENGINES: dict[str, ChatEngine] = {"vllm": VllmEngine()}


def chat_engine(entry: RegistryEntry) -> ChatEngine:
    engine = _CHAT_ENGINES.get(entry.engine)
    if engine is None:
        raise InvalidRequestError(
            f"The model `{entry.id}` runs on {entry.engine}, which has no chat adapter.",
            param="model",
        )
    return engine


__all__ = ["ChatEngine", "chat_engine"]
