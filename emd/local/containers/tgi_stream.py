"""TGI's chat chunks, token by token, in both tool-call eras (see tgi.py for sources).

`tool_format="3.2"` replays `ChatState::push` (router/src/chat.rs, TGI >= 3.2.0): text
tokens become `{"role": "assistant", "content": <token>}` deltas; with tools, tokens
are buffered until the grammar's `{"function": {"_name": "<name>",` parses, which
emits one delta with the name, id "0" and arguments "{"; the following tokens are
argument fragments (`"name": null`) until the whole JSON parses, when the last
fragment loses its closing brace and the state returns to buffering, so the final
(end-of-sequence) token emits nothing: a tool-call stream has **no chunk with a
finish_reason**. With `stream_options.include_usage`, the last token adds a separate
chunk with `choices: []`.

`tool_format="legacy"` replays the 2.4-3.1 `chat_completions` stream (router/src/
server.rs `StreamState::Buffering`/`Content`, `create_event_from_stream_token`): once
the space-stripped buffer matches `{"function":{"_name":"<name>"`, every buffered and
later token is sent raw as arguments, wrapper JSON and end-of-sequence text included,
in `tool_calls` that is one **object**, not a list, with id "" and name null; the
finish_reason and the usage (when asked) ride on the last token's chunk."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .echo_model import logprob_candidates

_LEGACY_NAME = re.compile(r'\{"function":\{"_name":"([^"]+)"')


@dataclass(frozen=True)
class Tok:
    text: str
    special: bool = False


@dataclass(frozen=True)
class TgiAnswer:
    toks: list[Tok]
    finish: str  # as FinishReason::format(true) writes it: stop, length, stop_sequence
    tools: bool  # the tool grammar produced these tokens
    prompt_tokens: int
    logprobs: bool
    top_n: int
    include_usage: bool

    @property
    def completion_tokens(self) -> int:
        return sum(1 for t in self.toks if not t.special)

    def usage(self) -> dict[str, int]:
        completion = self.completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def logprob_entry(self, text: str) -> dict[str, Any]:
        top = [{"token": t, "logprob": lp} for t, lp in logprob_candidates(text, self.top_n)]
        return {"token": text, "logprob": 0.0, "top_logprobs": top}


def _parses_as_call(text: str) -> str | None:
    """The function name if `text` is a `{"function": {"_name": ...}}` object (what
    serde's `Call` accepts), else None."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    function = value.get("function") if isinstance(value, dict) else None
    name = function.get("_name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else None


class TgiStream:
    def __init__(self, answer: TgiAnswer, model: str, fingerprint: str, legacy: bool) -> None:
        self.answer = answer
        self.legacy = legacy
        self.head = {
            "object": "chat.completion.chunk",
            "id": "",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": fingerprint,
        }

    def _chunk(self, delta: dict[str, Any], tok: Tok, last: bool) -> dict[str, Any]:
        answer = self.answer
        choice = {
            "index": 0,
            "delta": delta,
            "logprobs": {"content": [answer.logprob_entry(tok.text)]} if answer.logprobs else None,
            "finish_reason": answer.finish if last else None,
        }
        inline_usage = self.legacy and last and answer.include_usage
        return {**self.head, "choices": [choice], "usage": answer.usage() if inline_usage else None}

    def _text(self, tok: Tok, last: bool) -> dict[str, Any]:
        content = "" if tok.special else tok.text
        return self._chunk({"role": "assistant", "content": content}, tok, last)

    def _tool(self, tok: Tok, last: bool, name: str | None = None) -> dict[str, Any]:
        if self.legacy:
            call = {"index": 0, "id": "", "type": "function"}
            call["function"] = {"name": None, "arguments": tok.text}
            return self._chunk({"role": "assistant", "tool_calls": call}, tok, last)
        call = {"index": 0, "id": "0", "type": "function"}
        call["function"] = {"name": name, "arguments": tok.text}
        return self._chunk({"role": "assistant", "tool_calls": [call]}, tok, last)

    def chunks(self) -> Iterator[dict[str, Any]]:
        toks = self.answer.toks
        if not self.answer.tools:
            for i, tok in enumerate(toks):
                yield self._text(tok, i == len(toks) - 1)
        elif self.legacy:
            yield from self._legacy_tools()
        else:
            yield from self._tools()
        if self.answer.include_usage and not self.legacy:
            yield {**self.head, "choices": [], "usage": self.answer.usage()}

    def _legacy_tools(self) -> Iterator[dict[str, Any]]:
        toks, buffered, stripped = self.answer.toks, [], ""
        found = False
        for i, tok in enumerate(toks):
            if found:
                yield self._tool(tok, i == len(toks) - 1)
                continue
            stripped += tok.text.replace(" ", "")
            buffered.append(tok)
            if _LEGACY_NAME.search(stripped):
                found = True
                yield from (self._tool(b, False) for b in buffered)

    def _tools(self) -> Iterator[dict[str, Any]]:
        toks, text, in_call = self.answer.toks, "", False
        for i, tok in enumerate(toks):
            last = i == len(toks) - 1
            text += tok.text
            if not in_call:
                partial = text
                while partial and (partial[-1].isspace() or partial[-1] in ",}"):
                    partial = partial[:-1]
                name = _parses_as_call(partial + "}}")
                if name is not None and name != "no_tool":
                    in_call = True
                    yield self._tool(Tok("{"), last, name)
            elif _parses_as_call(text) is not None:
                in_call = False
                fragment = tok.text.rstrip()
                fragment = fragment[:-1] if fragment.endswith("}") else fragment
                yield self._tool(Tok(fragment), last)
            else:
                yield self._tool(tok, last)
