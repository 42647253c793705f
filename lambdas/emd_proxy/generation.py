"""A chat model's normalised chunk stream, opened for any API shape that generates
text (chat completions, legacy completions, the Responses API, Anthropic messages):
the route resolves the model once (`chat_model`; a shape's translation may need its
features), then opens the stream here and renders it (shapes/) as SSE, or asks for one
answer (`answer_chat`).

A non-stream answer is one plain InvokeEndpoint when it surely fits SageMaker's 60 s
limit: the engine's own non-stream path (its non-stream tool parser, the fields only
it returns, such as vLLM's `prompt_logprobs`). "Surely" means the request's
`max_tokens` (or the catalog's default) at the model's `decode_tokens_per_second`
(registry.py) takes at most `PLAIN_INVOKE_BUDGET_S`. Otherwise (no max_tokens, or
no known speed, or too many tokens) the answer streams from the engine and is folded
into one `chat.completion`, which no time limit cuts short."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import StreamingResponse

from .chunks import Batch, ChunkNormalizer, StreamFixer, normalise_answer
from .engines import adapter
from .errors import ModelScalingFromZeroError
from .metrics import record_usage
from .registry import RegistryEntry
from .sagemaker_client import UpstreamCall
from .schemas.chat import ChatCompletionRequest
from .schemas.completions import CompletionRequest
from .shapes.completions import (
    ID_PREFIX,
    TextChunks,
    TextCompletionBuilder,
    normalise_text_answer,
)
from .state import principal, services
from .streaming import (
    SSE_HEADERS,
    Renderer,
    chat_chunks,
    fold,
    fold_into,
    held_sse_body,
    sse_response,
    started,
)
from .upstream_json import load_json_object

# Of SageMaker's 60 s InvokeEndpoint limit, what generation may take in a plain
# invoke; the rest is left for the prompt's prefill and for queueing behind others.
PLAIN_INVOKE_BUDGET_S = 40.0

T = TypeVar("T")


def chat_model(request: Request, model_id: str) -> RegistryEntry:
    """The chat model the caller named, or its error (404 unknown or not visible to
    the key, 400 not a chat model)."""
    return services(request).registry.resolve(model_id, "chat", principal(request).models)


async def open_chat(
    request: Request, entry: RegistryEntry, chat: ChatCompletionRequest, *, wait: bool = True
) -> AsyncIterator[Batch | None]:
    """The chunk batches of a chat request to `entry` (`wait`: see `open_generation`)."""
    engine = adapter(entry, "chat")
    return await open_generation(
        request,
        entry,
        engine.call(chat, entry),
        engine.fixer(chat),
        # vLLM's rule: running usage only with include_usage too (the gateway always
        # asks the engine for usage, so it decides here).
        continuous_usage=bool(
            chat.wants_usage_chunk
            and chat.stream_options
            and chat.stream_options.continuous_usage_stats
        ),
        wait=wait,
    )


def plain_invoke(entry: RegistryEntry, request: ChatCompletionRequest | CompletionRequest) -> bool:
    """Whether a non-stream request goes as one plain invoke (see the module's doc).
    `prompt_logprobs` always does: vLLM computes them on its non-stream path only."""
    if request.model_extra and request.model_extra.get("prompt_logprobs") is not None:
        return True
    asked = (getattr(request, "max_completion_tokens", None), request.max_tokens)
    # 0 is a bound too (a legacy completion that only scores its prompt).
    limit = next((n for n in asked if n is not None), entry.defaults.get("max_tokens"))
    speed = entry.decode_tokens_per_second
    if not isinstance(limit, int) or speed is None:
        return False
    return limit / speed <= PLAIN_INVOKE_BUDGET_S


async def answer_chat(
    request: Request, entry: RegistryEntry, chat: ChatCompletionRequest
) -> dict[str, Any]:
    """One `chat.completion` for a non-stream client: a plain invoke, or the stream
    folded."""
    if not plain_invoke(entry, chat):
        return (await fold(await open_chat(request, entry, chat))).result(entry.id)
    engine = adapter(entry, "chat")
    answer = await _invoke_plain(request, entry, engine.plain_call(chat, entry))
    return _counted(request, entry, normalise_answer(engine.fix_answer(answer, chat), entry.id))


async def answer_completion(
    request: Request, entry: RegistryEntry, body: CompletionRequest
) -> dict[str, Any]:
    """One `text_completion` for a non-stream legacy completion, by the same rule."""
    engine = adapter(entry, "chat")
    if not plain_invoke(entry, body):
        call = engine.completion_call(body, entry)
        fixer = TextChunks(engine.fixer(body))
        batches = await open_generation(request, entry, call, fixer, ID_PREFIX)
        return (await fold_into(batches, TextCompletionBuilder())).result(entry.id)
    answer = await _invoke_plain(request, entry, engine.plain_completion_call(body, entry))
    return _counted(
        request, entry, normalise_text_answer(engine.fix_answer(answer, body), entry.id)
    )


async def _invoke_plain(
    request: Request, entry: RegistryEntry, call: UpstreamCall
) -> dict[str, Any]:
    """The engine's own non-stream answer, as a JSON object (or its error)."""
    answer = await services(request).invoke(entry, call, request)
    return load_json_object(answer.body, "answer")


def _counted(request: Request, entry: RegistryEntry, answer: dict[str, Any]) -> dict[str, Any]:
    """The answer, its usage recorded per key (as a stream's is when it ends)."""
    record_usage(principal(request).name, entry.id, answer.get("usage"))
    return answer


async def open_generation(
    request: Request,
    entry: RegistryEntry,
    call: UpstreamCall,
    fixer: StreamFixer,
    id_prefix: str = "chatcmpl-",
    *,
    continuous_usage: bool = False,
    wait: bool = True,
) -> AsyncIterator[Batch | None]:
    """The normalised chunk batches of one engine call; a failure to start
    (throttling, a missing endpoint) raises here, before any response goes out. Usage
    is recorded per key when the stream ends. A model waking from zero is waited for
    (`wake_wait_seconds`), unless `wait` is false: an SSE stream holds its client with
    keep-alives instead (`stream_sse`)."""
    _, parts = await services(request).open_stream(entry, call, wait=wait, request=request)
    return chat_chunks(
        parts,
        fixer,
        ChunkNormalizer(entry.id, id_prefix, continuous_usage=continuous_usage),
        on_usage=partial(record_usage, principal(request).name, entry.id),
    )


async def stream_sse(
    request: Request,
    entry: RegistryEntry,
    opener: Callable[[], Awaitable[AsyncIterator[T | None]]],
    render: Renderer[T],
) -> StreamingResponse:
    """The SSE response of a streamed request: `opener` opens its stream (without
    waiting for a model waking from zero), whose first item is read before the response
    starts, so a failure to start keeps its real status. A model scaled to zero is the
    exception: the response starts at once (200, text/event-stream) and keep-alive
    comments go out while the model wakes, up to `wake_stream_wait_seconds`; then the
    answer streams as usual, or the shape's error event (model_scaling_from_zero) ends
    it. Only the opening is ever repeated, never a stream that produced tokens."""

    async def open_started() -> AsyncIterator[T | None]:
        return await started(await opener())

    try:
        return sse_response(await open_started(), render)
    except ModelScalingFromZeroError:
        if entry.inference_component is None:
            raise
    svc = services(request)
    opened = svc.waker.hold(entry, open_started, svc.settings.wake_stream_wait_seconds, request)
    waiting = b": waking " + _comment_safe(entry.id) + b"\n\n"
    return StreamingResponse(
        held_sse_body(opened, render, waiting, svc.settings.keepalive_seconds),
        media_type=render.media_type,
        headers=SSE_HEADERS,
    )


def _comment_safe(text: str) -> bytes:
    return text.replace("\r", " ").replace("\n", " ").encode()
