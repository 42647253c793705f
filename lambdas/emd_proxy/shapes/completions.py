"""Legacy completions (`text_completion`): the engines answer `prompt` requests
natively; their chunks are read into the normalised chunk stream (the text as
`delta.content`, the completion logprobs kept on the choice) and rendered back as
OpenAI's `text_completion` objects."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..chunks import StreamFixer, answer_choices, finish_reason
from .chat import ChatEvents

ID_PREFIX = "cmpl-"
_LOGPROB_LISTS = ("tokens", "token_logprobs", "top_logprobs", "text_offset")


@dataclass
class TextChunks(StreamFixer):
    """Engine `text_completion` chunks -> chat-shaped chunks, before the engine's own
    fixer (TGI's stop-sequence hold-back works on completions as on chat)."""

    engine: StreamFixer

    def fix(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        choices = []
        for choice in chunk.get("choices") or []:
            text = choice.pop("text", None)
            choice["delta"] = {"content": text} if text else {}
            # TGI writes "" while a stream is unfinished.
            choice["finish_reason"] = choice.get("finish_reason") or None
            choices.append(choice)
        chunk["choices"] = choices
        return self.engine.fix(chunk)

    def end(self) -> list[dict[str, Any]]:
        return self.engine.end()


def _text_chunk(chunk: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": chunk["id"],
        "object": "text_completion",
        "created": chunk["created"],
        "model": chunk["model"],
        "choices": [
            {
                "index": choice["index"],
                "text": choice["delta"].get("content") or "",
                "logprobs": choice.get("logprobs"),
                "finish_reason": choice.get("finish_reason"),
            }
            for choice in chunk["choices"]
        ],
    }
    if chunk.get("system_fingerprint"):
        out["system_fingerprint"] = chunk["system_fingerprint"]
    if not chunk["choices"]:
        out["usage"] = chunk.get("usage")
    return out


class CompletionEvents(ChatEvents):
    """`text_completion` chunk events, with the chat stream's rules: `[DONE]` last,
    the usage chunk (`choices: []`) only when the client asked for it."""

    shape = staticmethod(_text_chunk)


@dataclass
class _Choice:
    text: list[str] = field(default_factory=list)
    logprobs: dict[str, list[Any]] | None = None
    finish_reason: str | None = None


class TextCompletionBuilder:
    """Normalised chunks in, one `text_completion` out (logprob lists joined)."""

    def __init__(self) -> None:
        self._choices: dict[int, _Choice] = {}
        self._first: dict[str, Any] | None = None
        self.usage: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        self._first = self._first or chunk
        if not chunk["choices"]:
            self.usage = chunk.get("usage")
        for raw in chunk["choices"]:
            choice = self._choices.setdefault(raw["index"], _Choice())
            if raw["delta"].get("content"):
                choice.text.append(raw["delta"]["content"])
            logprobs = raw.get("logprobs")
            if isinstance(logprobs, dict):
                joined = choice.logprobs = choice.logprobs or {k: [] for k in _LOGPROB_LISTS}
                for key in _LOGPROB_LISTS:
                    joined[key].extend(logprobs.get(key) or [])
            choice.finish_reason = raw.get("finish_reason") or choice.finish_reason

    def result(self, model: str) -> dict[str, Any]:
        first = self._first or {}
        answer: dict[str, Any] = {
            "id": first.get("id") or f"{ID_PREFIX}{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": first.get("created") or int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": index,
                    "text": "".join(choice.text),
                    "logprobs": choice.logprobs,
                    "finish_reason": choice.finish_reason or "stop",
                }
                for index, choice in sorted(self._choices.items())
            ]
            or [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}],
        }
        if first.get("system_fingerprint"):
            answer["system_fingerprint"] = first["system_fingerprint"]
        if self.usage:
            answer["usage"] = self.usage
        return answer


def normalise_text_answer(answer: dict[str, Any], model: str) -> dict[str, Any]:
    """An engine's non-stream `text_completion` by the stream's rules (the public
    model id, a real id, OpenAI's finish reasons); the engine's other fields (vLLM's
    `prompt_logprobs`, ...) are kept."""
    for choice in answer_choices(answer, "text_completion", model, ID_PREFIX):
        choice["text"] = choice.get("text") or ""
        choice.setdefault("logprobs", None)
        choice["finish_reason"] = finish_reason(choice.get("finish_reason") or "stop")
    return answer
