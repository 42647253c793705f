"""A chat model's normalised chunk stream, opened for any API shape that generates
text (chat completions, legacy completions, the Responses API, Anthropic messages):
the route resolves the model once (`chat_model`; a shape's translation may need its
features), then opens the stream here and renders it (shapes/) as SSE or folds it
into one answer (streaming.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

from starlette.requests import Request

from .chunks import Batch, ChunkNormalizer, StreamFixer
from .engines import adapter
from .metrics import record_usage
from .registry import RegistryEntry
from .sagemaker_client import UpstreamCall
from .schemas.chat import ChatCompletionRequest
from .state import principal, services
from .streaming import chat_chunks


def chat_model(request: Request, model_id: str) -> RegistryEntry:
    """The chat model the caller named, or its error (404 unknown or not visible to
    the key, 400 not a chat model)."""
    return services(request).registry.resolve(model_id, "chat", principal(request).models)


async def open_chat(
    request: Request, entry: RegistryEntry, chat: ChatCompletionRequest
) -> AsyncIterator[Batch | None]:
    """The chunk batches of a chat request to `entry`."""
    engine = adapter(entry, "chat")
    return await open_generation(request, entry, engine.call(chat, entry), engine.fixer(chat))


async def open_generation(
    request: Request,
    entry: RegistryEntry,
    call: UpstreamCall,
    fixer: StreamFixer,
    id_prefix: str = "chatcmpl-",
) -> AsyncIterator[Batch | None]:
    """The normalised chunk batches of one engine call; a failure to start
    (throttling, a missing endpoint) raises here, before any response goes out. Usage
    is recorded per key when the stream ends."""
    _, parts = await services(request).open_stream(entry.endpoint, call)
    return chat_chunks(
        parts,
        fixer,
        ChunkNormalizer(entry.id, id_prefix),
        on_usage=partial(record_usage, principal(request).name, entry.id),
    )
