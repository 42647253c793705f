"""`echo/local`: an instant, deterministic chat model with the vLLM container contract.

It streams the last user message back word by word (whitespace kept, so the joined
deltas equal the message), honours `max_tokens`/`max_completion_tokens` (one word is
one token; finish_reason "length") and `stop` (finish_reason "stop"), and sends the
usage chunk when `stream_options.include_usage` is set. `echo_delay_ms` (request body)
or `delay` (constructor) spaces the chunks, for benchmarks and keep-alive tests."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import openai_wire as wire

_TOKEN = re.compile(r"\s*\S+")


def tokens(text: str) -> list[str]:
    """Words with their leading whitespace; trailing whitespace rides on the last one,
    so the tokens always join back to the text."""
    words = _TOKEN.findall(text)
    tail = text[len(text.rstrip()) :]
    if words and tail:
        words[-1] += tail
    return words


def echo_answer(body: dict[str, Any]) -> tuple[list[str], str, int]:
    """(tokens to send, finish_reason, prompt token count) for a chat request."""
    messages = body["messages"]
    prompt_tokens = sum(len(tokens(wire.message_text(m.get("content")))) for m in messages)
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {"content": ""})
    words = tokens(wire.message_text(last_user.get("content")))
    finish = "stop"
    stops = body.get("stop") or []
    if isinstance(stops, str):
        stops = [stops]
    text = "".join(words)
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    if cut >= 0:
        # The answer is the text before the first stop string (which may start inside
        # a word, or span words): keep whole words up to it, then the cut word's head.
        kept, length = [], 0
        for word in words:
            if length + len(word) > cut:
                if cut > length:
                    kept.append(word[: cut - length])
                break
            kept.append(word)
            length += len(word)
        words = kept
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None and len(words) > int(limit):
        words, finish = words[: int(limit)], "length"
    return words, finish, prompt_tokens


class EchoContainer:
    served_model_name = "echo"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/ping", self.ping, methods=["GET", "POST"]),
                Route("/invocations", self.invocations, methods=["POST"]),
            ]
        )

    async def ping(self, _: Request) -> Response:
        return Response(status_code=200)

    async def invocations(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return wire.error(400, "Invalid JSON body")
        problem = _validate(body)
        if problem:
            return wire.error(400, problem)
        words, finish, prompt_tokens = echo_answer(body)
        delay = float(body.get("echo_delay_ms", self.delay * 1000)) / 1000
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                self._stream(words, finish, prompt_tokens, include_usage, delay),
                media_type="text/event-stream",
            )
        if delay:
            await asyncio.sleep(delay * len(words))
        return JSONResponse(
            wire.completion(
                self.served_model_name, "".join(words), finish, prompt_tokens, len(words)
            )
        )

    async def _stream(
        self, words: list[str], finish: str, prompt_tokens: int, include_usage: bool, delay: float
    ) -> AsyncIterator[bytes]:
        cid, created, model = wire.completion_id(), int(time.time()), self.served_model_name
        yield wire.sse(wire.chunk(cid, model, created, {"role": "assistant", "content": ""}))
        for word in words:
            if delay:
                await asyncio.sleep(delay)
            yield wire.sse(wire.chunk(cid, model, created, {"content": word}))
        yield wire.sse(wire.chunk(cid, model, created, {}, finish))
        if include_usage:
            yield wire.sse(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": wire.usage(prompt_tokens, len(words)),
                }
            )
        yield wire.SSE_DONE


def _validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "Request body must be a JSON object"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: field required and must be a non-empty list"
    if not all(isinstance(m, dict) for m in messages):
        return "messages: each message must be an object"
    if body.get("n", 1) != 1:
        return "echo supports n=1 only"
    return None
