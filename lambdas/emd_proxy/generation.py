"""A chat model's normalised chunk stream, opened for any API shape that generates
text (chat completions, the Responses API, Anthropic messages): the shape translates
its request into a `ChatCompletionRequest`, opens the stream here, then renders it
(shapes/) as SSE or folds it into one answer (streaming.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

from starlette.requests import Request

from .chunks import Batch, ChunkNormalizer
from .engines import adapter
from .metrics import record_usage
from .registry import RegistryEntry
from .schemas.chat import ChatCompletionRequest
from .state import principal, services
from .streaming import chat_chunks


async def open_chat(
    request: Request, chat: ChatCompletionRequest
) -> tuple[RegistryEntry, AsyncIterator[Batch | None]]:
    """The model's entry and its chunk batches; a failure to start (unknown model,
    throttling, a missing endpoint) raises here, before any response goes out. Usage
    is recorded per key when the stream ends."""
    svc = services(request)
    caller = principal(request)
    entry = svc.registry.resolve(chat.model, "chat", caller.models)
    engine = adapter(entry, "chat")
    _, parts = await svc.open_stream(entry.endpoint, engine.call(chat, entry))
    batches = chat_chunks(
        parts,
        engine.fixer(chat),
        ChunkNormalizer(entry.id),
        on_usage=partial(record_usage, caller.name, entry.id),
    )
    return entry, batches
