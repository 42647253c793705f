"""The chat flow every engine shares; adapters fill in the engine-specific hooks.

Every chat request streams from the engine, also when the client did not ask for a
stream: the answer is then folded into one `chat.completion`. That is one code path
for both, and it lifts SageMaker's 60 s InvokeEndpoint limit on long answers.

Hooks: `prepare` (the OpenAI body -> what this container accepts) and `fixer` (a
per-stream `StreamFixer` repairing engine chunks before the shared normalisation).
The flow: re-split the upstream bytes into lines (SSE or JSON lines), normalise each
chunk (chat_stream.py), drop the usage chunk the client did not ask for, turn a
failure after the first byte into one error event, and always end with `[DONE]`.
The chunks one upstream part completed travel as a batch and go out in one write: a
model that streams token by token sends a part per token, so nothing waits, and an
answer that arrives at once costs one write instead of one per chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic_core import from_json, to_json

from ..errors import InvalidRequestError, ProxyError, UpstreamError
from ..jsonio import dumps
from ..log import logger
from ..registry import RegistryEntry
from ..schemas.chat import ChatCompletionRequest
from ..sse import DONE, KEEPALIVE, STREAM_DONE, LineSplitter, event, read_line
from .chat_stream import ChunkNormalizer, CompletionBuilder

UsageSink = Callable[[dict[str, Any] | None], None]
# The normalised chunks one upstream part completed.
Batch = list[dict[str, Any]]


_STREAM_END = object()


class StreamFixer:
    """Per-stream, engine-specific repairs, before the shared normalisation. `fix`
    maps one engine chunk to any number of chunks; `end` adds what the engine never
    sent (a final finish_reason, held-back text) when its stream is over."""

    def fix(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        return [chunk]

    def end(self) -> list[dict[str, Any]]:
        return []


class ChatEngine:
    name: str = "base"
    content_type: str = "application/json"

    # --- hooks -------------------------------------------------------------------
    def prepare(self, body: dict[str, Any], entry: RegistryEntry) -> dict[str, Any]:
        return body

    def fixer(self, request: ChatCompletionRequest) -> StreamFixer:
        return StreamFixer()

    # --- shared flow -------------------------------------------------------------
    def build_payload(self, request: ChatCompletionRequest, entry: RegistryEntry) -> bytes:
        check_features(request, entry)
        body: dict[str, Any] = {**entry.defaults, **request.model_dump(exclude_unset=True)}
        # The served name inside the container is not the public id; the engines
        # accept a request without `model`.
        body.pop("model", None)
        body["stream"] = True
        # Always ask for usage (recorded per key); stripped unless the client asked.
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return dumps(self.prepare(body, entry))

    async def chunks(
        self,
        parts: AsyncIterator[bytes | None],
        entry: RegistryEntry,
        request: ChatCompletionRequest,
    ) -> AsyncIterator[Batch | None]:
        """Normalised chunks with choices, then one usage chunk (`choices: []`) if the
        engine reported usage, in batches: the chunks each upstream part completed
        (never empty), so what arrived together goes out together and nothing waits
        for a later part; None where a keep-alive is due. Reads to the end of the
        upstream stream even after `[DONE]`, so its connection can be reused."""
        normalise = ChunkNormalizer(entry)
        fixer = self.fixer(request)

        def add(batch: Batch, raw: list[dict[str, Any]]) -> None:
            for chunk in raw:
                if normalise(chunk)["choices"]:
                    batch.append(chunk)

        try:
            async for payloads in _payloads(parts):
                if payloads is None:
                    yield None
                    continue
                batch: Batch = []
                failure: ProxyError | None = None
                try:
                    for payload in payloads:
                        add(batch, fixer.fix(load_json_object(payload, "stream chunk")))
                except ProxyError as exc:
                    failure = exc  # what came before the failure still goes out
                if batch:
                    yield batch
                if failure is not None:
                    raise failure
            batch = []
            add(batch, fixer.end())
            if normalise.usage:
                batch.append(normalise.usage_chunk())
            if batch:
                yield batch
        finally:
            # Leaving early (client gone, error) closes the upstream stream at once.
            await parts.aclose()  # type: ignore[attr-defined]

    async def sse_stream(
        self,
        first: Batch | None,
        rest: AsyncIterator[Batch | None],
        entry: RegistryEntry,
        *,
        include_usage: bool,
        on_usage: UsageSink | None = None,
    ) -> AsyncIterator[bytes]:
        """`first` was read before the response started (so its failure kept its HTTP
        status); the rest follows as SSE, one write per batch."""
        usage: dict[str, Any] | None = None
        try:
            batch: Any = first
            while batch is not _STREAM_END:
                if batch is None:
                    yield KEEPALIVE
                else:
                    events = []
                    for chunk in batch:
                        if not chunk["choices"]:
                            usage = chunk.get("usage")
                            # The usage chunk is the only one without choices, and only
                            # when the client asked: clients read `chunk.choices[0]` on
                            # every chunk.
                            if not include_usage:
                                continue
                        events.append(b"data: " + to_json(chunk) + b"\n\n")
                    if events:
                        yield b"".join(events)
                batch = await anext(rest, _STREAM_END)
        except ProxyError as exc:
            yield event(exc.body())
        except Exception:  # noqa: BLE001 - a bug must still end the stream cleanly
            logger.exception("stream failed", extra={"model": entry.id})
            yield event(UpstreamError("The model's response could not be read.").body())
        finally:
            await rest.aclose()
        if on_usage is not None:
            on_usage(usage)
        yield DONE

    async def complete(
        self,
        batches: AsyncIterator[Batch | None],
        entry: RegistryEntry,
        on_usage: UsageSink | None = None,
    ) -> dict[str, Any]:
        builder = CompletionBuilder()
        try:
            async for batch in batches:
                for chunk in batch or ():
                    builder.add(chunk)
        finally:
            await batches.aclose()  # type: ignore[attr-defined]
        if on_usage is not None:
            on_usage(builder.usage)
        return builder.result(entry.id)


async def _payloads(parts: AsyncIterator[bytes | None]) -> AsyncIterator[list[bytes] | None]:
    """The JSON payloads of each upstream part (lines re-split across parts; SSE or
    JSON lines), None for a keep-alive. Reads to the end even after `[DONE]`, so the
    upstream connection can be reused."""
    splitter = LineSplitter()
    done = False
    async for part in parts:
        if part is None:
            yield None
        elif not done:
            payloads, done = _read_lines(splitter.feed(part))
            yield payloads
    if not done:
        yield _read_lines(splitter.flush())[0]


def _read_lines(lines: list[bytes]) -> tuple[list[bytes], bool]:
    """(payloads before `[DONE]`, whether `[DONE]` came)."""
    payloads = []
    for line in lines:
        if not line:
            continue  # the blank line after each SSE event
        payload = read_line(line)
        if payload is STREAM_DONE:
            return payloads, True
        if payload is not None:
            payloads.append(payload)  # type: ignore[arg-type]
    return payloads, False


async def first_batch(batches: AsyncIterator[Batch | None]) -> Batch | object | None:
    """The first batch (or keep-alive) of a stream, read before the response starts;
    `_STREAM_END` for an empty stream. Closes the stream when that read fails."""
    try:
        return await anext(batches, _STREAM_END)
    except BaseException:
        await batches.aclose()  # type: ignore[attr-defined]
        raise


def check_features(request: ChatCompletionRequest, entry: RegistryEntry) -> None:
    """Refuse what the model cannot do with a clear 400, instead of an engine error or
    (worse) an answer that silently ignored half the request."""
    if request.tools and not entry.features.tools:
        raise InvalidRequestError(f"The model `{entry.id}` does not support tools.", param="tools")
    if entry.features.vision:
        return
    for m, message in enumerate(request.messages):
        if isinstance(message.content, list):
            for p, part in enumerate(message.content):
                if part.type in ("image_url", "input_image"):
                    raise InvalidRequestError(
                        f"The model `{entry.id}` does not accept images.",
                        param=f"messages.{m}.content.{p}",
                    )


# TGI's `error_type`s that mean the request was wrong, not the model.
_CLIENT_ERROR_TYPES = frozenset({"validation", "tool_error"})


def load_json_object(body: bytes, what: str) -> dict[str, Any]:
    """Parse a container's JSON, or fail: a bad request the engine reported in its
    stream (400), otherwise a bad upstream answer (502)."""
    try:
        parsed = from_json(body)
    except ValueError as exc:
        raise UpstreamError(f"The model returned an unreadable {what}.") from exc
    if not isinstance(parsed, dict):
        raise UpstreamError(f"The model returned an unexpected {what}.")
    error = parsed.get("error")
    if error or parsed.get("object") == "error":
        message = (
            error.get("message") if isinstance(error, dict) else (error or parsed.get("message"))
        )
        if parsed.get("error_type") in _CLIENT_ERROR_TYPES:
            raise InvalidRequestError(str(message))
        raise UpstreamError(f"The model failed: {message or 'unknown error'}")
    return parsed
