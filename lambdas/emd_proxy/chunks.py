"""The normalised chunk stream every API shape renders from: OpenAI
`chat.completion.chunk` objects, exact, whatever the engine.

`StreamFixer` is the one engine-specific step (an engine's per-stream repairs, before
normalisation).

`ChunkNormalizer` fixes what engines get wrong or leave out, one chunk at a time, with
the state a stream needs: one stable `id`/`created`, `model` set to the public id,
`tool_calls[].index` counted from 0 without gaps per choice (an engine's -1, missing
or repeated indexes would crash strict clients), a real call id and `type` on each
call's first fragment only, arguments always as JSON-string fragments, and OpenAI's
finish reasons; usage is taken out of the stream and sent alone, last.
`CompletionBuilder` folds normalised chunks into one `chat.completion`, so
non-streaming requests can stream from the engine too (which lifts SageMaker's 60 s
InvokeEndpoint limit). `normalise_answer` applies the same rules to an engine's own
non-stream `chat.completion`.

Finish reasons are the engine's: vLLM says `stop` for a call of a named tool (as
OpenAI does) and `abort` for an aborted request, and both reach the client as said.
Only TGI's own names (`eos_token`, `stop_sequence`) become OpenAI's `stop`."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

# The normalised chunks one upstream part completed.
Batch = list[dict[str, Any]]

# TGI's generate names for finish reasons -> OpenAI's; every other reason passes as is.
_FINISH_REASONS = {"eos_token": "stop", "stop_sequence": "stop"}


def finish_reason(reason: Any) -> str:
    return _FINISH_REASONS.get(str(reason), str(reason))


def tool_call(raw: dict[str, Any]) -> dict[str, Any]:
    """A whole tool call (or a call's first fragment) as OpenAI's: a real id (some
    engines number calls "0", "1", not unique across a conversation), `type`, a name,
    and the arguments as a JSON string."""
    function = dict(raw.get("function") or {})
    function["arguments"] = arguments_text(function.get("arguments"))
    function.setdefault("name", "")
    call_id = raw.get("id")
    if not isinstance(call_id, str) or len(call_id) < 6:
        call_id = _call_id()
    return {**raw, "id": call_id, "type": "function", "function": function}


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def arguments_text(value: Any) -> str:
    """Tool-call arguments as OpenAI sends them: a JSON string (engines send objects)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass
class _Calls:
    """Tool calls seen so far in one choice."""

    by_engine_key: dict[Any, int] = field(default_factory=dict)
    count: int = 0
    current: int | None = None


class StreamFixer:
    """Per-stream, engine-specific repairs, before the shared normalisation. `fix`
    maps one engine chunk to any number of chunks; `end` adds what the engine never
    sent (a final finish_reason, held-back text) when its stream is over."""

    def fix(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        return [chunk]

    def end(self) -> list[dict[str, Any]]:
        return []


class ChunkNormalizer:
    """`continuous_usage`: the client asked for vLLM's `continuous_usage_stats`, so
    usage stays on every chunk that has it (and is still sent alone, last)."""

    def __init__(
        self, model: str, id_prefix: str = "chatcmpl-", *, continuous_usage: bool = False
    ) -> None:
        self.model = model
        self._id_prefix = id_prefix
        self._continuous_usage = continuous_usage
        self.id: str | None = None
        self.created: int | None = None
        self.fingerprint: str | None = None
        self.usage: dict[str, Any] | None = None
        self._calls: dict[int, _Calls] = {}

    def __call__(self, chunk: dict[str, Any]) -> dict[str, Any]:
        self.id = self.id or chunk.get("id") or f"{self._id_prefix}{uuid.uuid4().hex}"
        self.created = self.created or chunk.get("created") or int(time.time())
        self.fingerprint = self.fingerprint or chunk.get("system_fingerprint") or None
        chunk["id"], chunk["created"] = self.id, self.created
        chunk["object"] = "chat.completion.chunk"
        chunk["model"] = self.model
        if self.fingerprint:
            chunk["system_fingerprint"] = self.fingerprint
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            chunk["choices"] = choices = []
        for position, choice in enumerate(choices):
            index = choice.get("index")
            choice["index"] = index = index if isinstance(index, int) else position
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                choice["delta"] = delta = {}
            # vLLM >= 0.16 calls it `reasoning`; DeepSeek's API and most clients read
            # `reasoning_content`: send both.
            if delta.get("reasoning") and "reasoning_content" not in delta:
                delta["reasoning_content"] = delta["reasoning"]
            if delta.get("tool_calls"):
                delta["tool_calls"] = self._tool_calls(index, delta["tool_calls"])
            elif "tool_calls" in delta:
                del delta["tool_calls"]  # an empty list is noise to clients
            reason = choice.get("finish_reason")
            if reason is not None:
                choice["finish_reason"] = finish_reason(reason)
        # Usage travels alone, last (engines put it on the last chunk, in a chunk of
        # its own, or nowhere); `usage_chunk()` sends it at the end.
        usage = chunk.get("usage") if self._continuous_usage else chunk.pop("usage", None)
        if usage:
            self.usage = usage
        elif "usage" in chunk:
            del chunk["usage"]  # TGI's `"usage": null` on every chunk
        return chunk

    def usage_chunk(self) -> dict[str, Any]:
        chunk = {
            "id": self.id or f"{self._id_prefix}{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": self.created or int(time.time()),
            "model": self.model,
            "choices": [],
            "usage": self.usage,
        }
        if self.fingerprint:
            chunk["system_fingerprint"] = self.fingerprint
        return chunk

    def _tool_calls(self, choice: int, raw_calls: Any) -> list[dict[str, Any]]:
        if isinstance(raw_calls, dict):  # TGI before 3.2: one object, not a list
            raw_calls = [raw_calls]
        calls = self._calls.setdefault(choice, _Calls())
        out = []
        for raw in raw_calls:
            function = dict(raw.get("function") or {})
            engine_index = raw.get("index")
            key = engine_index if isinstance(engine_index, int) and engine_index >= 0 else None
            starts = (key is not None and key not in calls.by_engine_key) or (
                key is None and (function.get("name") or calls.current is None)
            )
            if starts:
                ours = calls.count
                calls.count += 1
                if key is not None:
                    calls.by_engine_key[key] = ours
                calls.current = ours
                first = tool_call({"id": raw.get("id"), "function": function})
                out.append({"index": ours, **first})
            else:
                ours = calls.by_engine_key[key] if key is not None else calls.current
                fragment = {"arguments": arguments_text(function.get("arguments"))}
                out.append({"index": ours, "function": fragment})
        return out


@dataclass
class _Choice:
    role: str = "assistant"
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    logprobs: list[Any] = field(default_factory=list)
    finish_reason: str | None = None
    stop_reason: Any = None  # vLLM's: the stop string (or token id) that ended it


class CompletionBuilder:
    """Normalised chunks in, one `chat.completion` out."""

    def __init__(self) -> None:
        self._choices: dict[int, _Choice] = {}
        self._first: dict[str, Any] | None = None
        self.usage: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        self._first = self._first or chunk
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for raw in chunk.get("choices", []):
            choice = self._choices.get(raw["index"])
            if choice is None:
                choice = self._choices[raw["index"]] = _Choice()
            delta = raw.get("delta") or {}
            choice.role = delta.get("role") or choice.role
            if delta.get("content"):
                choice.content.append(delta["content"])
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                choice.reasoning.append(reasoning)
            for call in delta.get("tool_calls") or []:
                existing = choice.tool_calls.get(call["index"])
                if existing is None:
                    choice.tool_calls[call["index"]] = {
                        "id": call.get("id") or _call_id(),
                        "type": "function",
                        "function": {
                            "name": call["function"].get("name", ""),
                            "arguments": call["function"].get("arguments", ""),
                        },
                    }
                else:
                    existing["function"]["arguments"] += call["function"].get("arguments", "")
            logprobs = raw.get("logprobs")
            if isinstance(logprobs, dict) and logprobs.get("content"):
                choice.logprobs.extend(logprobs["content"])
            choice.finish_reason = raw.get("finish_reason") or choice.finish_reason
            if raw.get("stop_reason") is not None:
                choice.stop_reason = raw["stop_reason"]

    def result(self, model: str) -> dict[str, Any]:
        first = self._first or {}
        choices = []
        for index in sorted(self._choices) or [0]:
            choice = self._choices.get(index, _Choice())
            calls = [choice.tool_calls[i] for i in sorted(choice.tool_calls)]
            message: dict[str, Any] = {
                "role": choice.role,
                "content": "".join(choice.content) if choice.content or not calls else None,
                "refusal": None,
                "annotations": [],
            }
            if choice.reasoning:
                message["reasoning_content"] = message["reasoning"] = "".join(choice.reasoning)
            if calls:
                message["tool_calls"] = calls
            folded: dict[str, Any] = {
                "index": index,
                "message": message,
                "logprobs": {"content": choice.logprobs} if choice.logprobs else None,
                "finish_reason": choice.finish_reason or "stop",
            }
            if choice.stop_reason is not None:
                folded["stop_reason"] = choice.stop_reason
            choices.append(folded)
        completion: dict[str, Any] = {
            "id": first.get("id") or f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": first.get("created") or int(time.time()),
            "model": model,
            "choices": choices,
        }
        if first.get("system_fingerprint"):
            completion["system_fingerprint"] = first["system_fingerprint"]
        if self.usage:
            completion["usage"] = self.usage
        return completion


def answer_choices(
    answer: dict[str, Any], object_: str, model: str, id_prefix: str
) -> list[dict[str, Any]]:
    """An engine's non-stream answer's envelope by the stream's rules (a real id, the
    object type, the public model id, no empty fingerprint) and its choices, each with
    its index; the answer normalisers fix the choices' own fields."""
    answer["id"] = answer.get("id") or f"{id_prefix}{uuid.uuid4().hex}"
    answer["object"] = object_
    answer["created"] = answer.get("created") or int(time.time())
    answer["model"] = model
    if not answer.get("system_fingerprint"):
        answer.pop("system_fingerprint", None)
    choices = answer.get("choices")
    if not isinstance(choices, list):
        answer["choices"] = choices = []
    for position, choice in enumerate(choices):
        if not isinstance(choice.get("index"), int):
            choice["index"] = position
    return choices


def normalise_answer(
    answer: dict[str, Any], model: str, id_prefix: str = "chatcmpl-"
) -> dict[str, Any]:
    """An engine's non-stream `chat.completion` by the stream's rules: the public
    model id, a real id, OpenAI's message keys, tool calls with real ids and string
    arguments, both reasoning field names. Every other field the engine sent (vLLM's
    `prompt_logprobs`, `stop_reason`, `token_ids`, ...) is kept."""
    for choice in answer_choices(answer, "chat.completion", model, id_prefix):
        message = choice.get("message")
        if not isinstance(message, dict):
            choice["message"] = message = {"role": "assistant"}
        message.setdefault("role", "assistant")
        message.setdefault("content", None)
        message.setdefault("refusal", None)
        if message.get("annotations") is None:
            message["annotations"] = []
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if reasoning:
            message["reasoning_content"] = message["reasoning"] = reasoning
        calls = message.get("tool_calls")
        if isinstance(calls, dict):  # TGI before 3.2
            calls = [calls]
        if calls:
            message["tool_calls"] = [tool_call(c) for c in calls if isinstance(c, dict)]
        else:
            message.pop("tool_calls", None)
        choice.setdefault("logprobs", None)
        choice["finish_reason"] = finish_reason(choice.get("finish_reason") or "stop")
    return answer
