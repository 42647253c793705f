"""Text Generation Inference (HF TGI DLC, >= 2.4; TGI is in maintenance mode):
`/invocations` takes the OpenAI chat body (Messages API) and streams SSE ending with
`[DONE]`. Sources: notes/containers.md section 3 and TGI's router (chat.rs,
tool_grammar.rs, server.rs); emd/local/containers/tgi.py reproduces both formats.

What TGI does differently, and what is repaired here:
- `max_completion_tokens` is ignored (only `max_tokens` counts) and `n` is unused:
  mapped, and `n > 1` refused instead of silently answering once.
- Stop sequences stay in the text: text that could begin a stop sequence is held back
  and the matched stop is cut, as OpenAI does.
- 3.2+: a tool stream's first delta has `id: "0"`, the name and `"{"`; the last
  fragment lacks the closing brace; no chunk ever has a finish_reason.
- `top_p: 1` (no filtering, but refused by TGI) is left out.
- Fields TGI's serde cannot read (router/src/lib.rs, 2.4 to 3.3.7): `stop` is
  `Vec<String>` (a string becomes a list); `logit_bias` is an unused `Vec<f32>` on chat
  and absent on completions (an OpenAI map is refused unless empty);
  `response_format` is TGI's adjacently tagged `GrammarType` `{"type", "value"}`:
  OpenAI's json_schema becomes `{"type": "json", "value": schema}` (3.3's own
  `json_schema` variant is not in the older versions), `json_object` (no schema, and
  TGI wants one with `properties`) becomes the `regex` grammar outlines-core builds for
  `{"type": "object"}`, `text` is left out. Completions take no grammar: refused.
- Completions streams end with the end-of-sequence token's text (`</s>`) on the
  `eos_token` chunk: dropped.
- Before 3.2: tool calls stream as raw tokens of `{"function": {"_name": ..., args}}`
  (plus the end-of-sequence text), with no name: buffered and sent as one call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..chunks import StreamFixer, arguments_text
from ..errors import InvalidRequestError
from ..registry import RegistryEntry
from ..schemas.chat import ChatCompletionRequest
from ..schemas.completions import CompletionRequest
from .chat import ChatEngine

_EOS_TEXT = ("</s>", "<|im_end|>", "<|eot_id|>", "<|endoftext|>")


class TgiEngine(ChatEngine):
    name = "tgi"

    def prepare(self, body: dict[str, Any], entry: RegistryEntry) -> dict[str, Any]:
        if (body.get("n") or 1) > 1:
            raise InvalidRequestError(
                f"The model `{entry.id}` (TGI) generates one choice per request; n must be 1.",
                param="n",
            )
        body["messages"] = [
            {**m, "role": "system"} if m.get("role") == "developer" else m for m in body["messages"]
        ]
        _drop_neutral_top_p(body)
        _stop_list(body)
        _refuse_logit_bias(body, entry)
        _grammar(body, entry)
        if body.get("top_logprobs") == -1:
            # vLLM's "every token"; TGI's top_n_tokens is unsigned and bounded
            # (--max-top-n-tokens, 5 by default), so its parser would refuse the body.
            raise InvalidRequestError(
                f"The model `{entry.id}` (TGI) cannot return every token's logprob; "
                "ask for top_logprobs from 0 to 5.",
                param="top_logprobs",
            )
        if "max_completion_tokens" in body:
            limit = body.pop("max_completion_tokens")
            body.setdefault("max_tokens", limit)
        return body

    def prepare_completion(self, body: dict[str, Any], entry: RegistryEntry) -> dict[str, Any]:
        """TGI's CompletionRequest takes text prompts only and has no echo, logprobs or
        best_of (it would ignore them silently): refused, naming the field."""
        if (body.get("n") or 1) > 1:
            raise InvalidRequestError(
                f"The model `{entry.id}` (TGI) generates one choice per prompt; n must be 1.",
                param="n",
            )
        _drop_neutral_top_p(body)
        _stop_list(body)
        _refuse_logit_bias(body, entry)
        if body.get("response_format") is not None:
            raise InvalidRequestError(
                f"The model `{entry.id}` (TGI) takes no `response_format` on completions; "
                "use chat completions for structured output.",
                param="response_format",
            )
        body.pop("response_format", None)
        prompt = body["prompt"]
        if isinstance(prompt, list) and not all(isinstance(p, str) for p in prompt):
            raise InvalidRequestError(
                f"The model `{entry.id}` (TGI) takes text prompts, not token ids.",
                param="prompt",
            )
        asked = {
            "echo": bool(body.get("echo")),
            "logprobs": body.get("logprobs") is not None,
            "best_of": (body.get("best_of") or 1) > 1,
        }
        for name, used in asked.items():
            if used:
                raise InvalidRequestError(
                    f"The model `{entry.id}` (TGI) does not support `{name}` on completions.",
                    param=name,
                )
        return body

    def fixer(self, request: ChatCompletionRequest | CompletionRequest) -> StreamFixer:
        return TgiStreamFixer(_stops(request))

    def fix_answer(
        self, answer: dict[str, Any], request: ChatCompletionRequest | CompletionRequest
    ) -> dict[str, Any]:
        """A non-stream answer (chat or legacy completion): the stop sequence cut from
        the text (and named, as vLLM's `stop_reason`), a tool call finishing
        `tool_calls` (TGI says `stop`)."""
        stops = _stops(request)
        for choice in answer.get("choices") or ():
            message = choice.get("message")
            holder, key = (message, "content") if isinstance(message, dict) else (choice, "text")
            message = message if isinstance(message, dict) else {}
            text = holder.get(key)
            found = _first_stop(text, stops) if isinstance(text, str) else None
            if found is not None:
                cut, choice["stop_reason"] = found
                holder[key] = text[:cut]
            if message.get("tool_calls") and choice.get("finish_reason") in _TGI_STOPS:
                choice["finish_reason"] = "tool_calls"
        return answer


# How TGI says an answer ended by itself (the end of sequence or a stop sequence).
_TGI_STOPS = frozenset({"stop", "eos_token", "stop_sequence"})


def _first_stop(text: str, stops: list[str]) -> tuple[int, str] | None:
    """Where the earliest stop sequence in `text` starts, and which it is."""
    return min(((text.find(s), s) for s in stops if s in text), default=None)


def _stops(request: ChatCompletionRequest | CompletionRequest) -> list[str]:
    stops = request.stop or []
    return [stops] if isinstance(stops, str) else list(stops)


@dataclass
class _ChoiceState:
    held: str = ""  # text that may be the start of a stop sequence
    matched: str | None = None  # the stop sequence that ended the text
    finished: bool = False
    legacy_tool: bool | None = None  # None until the first tool delta says which
    arguments: str = ""
    tool_seen: bool = False


@dataclass
class TgiStreamFixer(StreamFixer):
    stops: list[str]
    _choices: dict[int, _ChoiceState] = field(default_factory=dict)
    _template: dict[str, Any] = field(default_factory=dict)

    def fix(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        self._template = {k: v for k, v in chunk.items() if k not in ("choices", "usage")}
        choices = []
        for position, choice in enumerate(chunk.get("choices") or []):
            index = choice.get("index", position)
            state = self._choices.setdefault(index, _ChoiceState())
            delta = dict(choice.get("delta") or {})
            if delta.get("tool_calls"):
                self._tool_delta(state, delta)
            reason = choice.get("finish_reason")
            if reason == "eos_token" and delta.get("content") in _EOS_TEXT:
                # Streamed completions end with the end-of-sequence token's own text.
                del delta["content"]
            if isinstance(delta.get("content"), str):
                delta["content"] = self._text(state, delta["content"], final=reason is not None)
                if not delta["content"]:
                    del delta["content"]
            if reason is not None:
                state.finished = True
                if state.legacy_tool:
                    delta["tool_calls"] = self._legacy_call(state)
                if state.tool_seen and reason in _TGI_STOPS:
                    reason = "tool_calls"  # TGI ends every answer "stop", tool calls too
            if delta or reason is not None:
                fixed = {**choice, "index": index, "delta": delta, "finish_reason": reason}
                if reason is not None and state.matched is not None:
                    # vLLM's field: the stop string that matched (TGI does not say which;
                    # the Anthropic shape's stop_sequence needs it).
                    fixed["stop_reason"] = state.matched
                choices.append(fixed)
        out = {**chunk, "choices": choices}
        return [out] if choices or out.get("usage") else []

    def end(self) -> list[dict[str, Any]]:
        choices = []
        for index, state in self._choices.items():
            if state.finished:
                continue
            delta: dict[str, Any] = {}
            text = self._text(state, "", final=True)
            if text:
                delta["content"] = text
            if state.legacy_tool:
                delta["tool_calls"] = self._legacy_call(state)
            elif state.tool_seen and _needs_closing_brace(state.arguments):
                delta["tool_calls"] = [{"index": 0, "function": {"arguments": "}"}}]
            reason = "tool_calls" if state.tool_seen else "stop"
            choice = {"index": index, "delta": delta, "finish_reason": reason}
            if state.matched is not None:
                choice["stop_reason"] = state.matched
            choices.append(choice)
        return [{**self._template, "choices": choices}] if choices else []

    def _text(self, state: _ChoiceState, text: str, *, final: bool) -> str:
        """Hold back what may start a stop sequence; cut the stop once it is there."""
        if not self.stops:
            return text
        held = state.held + text
        found = _first_stop(held, self.stops)
        if found is not None:
            cut, state.matched = found
            state.held = ""
            return held[:cut]
        if final:
            state.held = ""
            return held
        keep = max(len(s) for s in self.stops) - 1
        state.held = held[len(held) - keep :] if keep else ""
        return held[: len(held) - keep] if keep else held

    def _tool_delta(self, state: _ChoiceState, delta: dict[str, Any]) -> None:
        calls = delta["tool_calls"]
        calls = [calls] if isinstance(calls, dict) else calls
        state.tool_seen = True
        for call in calls:
            function = call.get("function") or {}
            if state.legacy_tool is None:
                state.legacy_tool = not function.get("name")
            state.arguments += arguments_text(function.get("arguments"))
        if state.legacy_tool:
            del delta["tool_calls"]  # sent whole at the end
        else:
            delta["tool_calls"] = calls

    def _legacy_call(self, state: _ChoiceState) -> list[dict[str, Any]]:
        """`{"function": {"_name": "f", "a": 1}}</s>` -> one OpenAI call."""
        raw = state.arguments.strip()
        for eos in _EOS_TEXT:
            raw = raw.removesuffix(eos).strip()
        state.legacy_tool = False  # sent once
        try:
            function = json.loads(raw).get("function", {})
        except (ValueError, AttributeError):
            return [{"index": 0, "function": {"name": "", "arguments": raw}}]
        name = function.pop("_name", function.pop("name", ""))
        return [{"index": 0, "function": {"name": name, "arguments": arguments_text(function)}}]


def _drop_neutral_top_p(body: dict[str, Any]) -> None:
    """TGI refuses `top_p: 1` (it wants 0 < top_p < 1), which means "no nucleus
    filtering", the same as leaving it out; LangChain sends it by default."""
    if body.get("top_p") == 1:
        del body["top_p"]


def _stop_list(body: dict[str, Any]) -> None:
    """TGI's `stop` is `Option<Vec<String>>`: a string does not deserialize."""
    if isinstance(body.get("stop"), str):
        body["stop"] = [body["stop"]]


def _refuse_logit_bias(body: dict[str, Any], entry: RegistryEntry) -> None:
    """TGI's chat `logit_bias` is an unused `Vec<f32>` (OpenAI's map does not
    deserialize) and completions have none (ignored): an empty map is the same as none,
    any other bias cannot be applied."""
    if body.get("logit_bias"):
        raise InvalidRequestError(
            f"The model `{entry.id}` (TGI) does not support `logit_bias`.", param="logit_bias"
        )
    body.pop("logit_bias", None)


def _grammar(body: dict[str, Any], entry: RegistryEntry) -> None:
    """OpenAI's `response_format` as TGI's `GrammarType` (`{"type", "value"}`)."""
    fmt = body.get("response_format")
    if fmt is None:
        body.pop("response_format", None)
        return
    kind = fmt.get("type")
    if kind == "text":
        del body["response_format"]
        return
    if body.get("tools"):
        # TGI: 422 "Grammar and tools are mutually exclusive".
        raise InvalidRequestError(
            f"The model `{entry.id}` (TGI) cannot combine `response_format` with `tools`.",
            param="response_format",
        )
    if kind == "json_object":
        body["response_format"] = {"type": "regex", "value": JSON_OBJECT_REGEX}
    elif kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
            # TGI: "grammar is not valid: Grammar must have a 'properties' field".
            raise InvalidRequestError(
                f"The model `{entry.id}` (TGI) needs a JSON schema object with "
                "`properties` at its top level.",
                param="response_format.json_schema.schema",
            )
        body["response_format"] = {"type": "json", "value": schema}
    elif kind in ("json", "regex") and "value" in fmt:
        pass  # already TGI's own grammar
    else:
        raise InvalidRequestError(
            f"The model `{entry.id}` (TGI) supports response_format types text, "
            f"json_object and json_schema, not {kind!r}.",
            param="response_format.type",
        )


def _object_regex(depth: int) -> str:
    """outlines-core's `parse_object_type` for an object without properties (any keys,
    values of any type nested `depth` more levels); src/json_schema/parsing.rs at
    ba10c619, the revision TGI 3.x pins."""
    value = "(" + "|".join([_STRING, _NUMBER, _BOOLEAN, "null", *_nested(depth)]) + ")"
    pair = f"{_STRING}{_WS}:{_WS}{value}"
    return rf"\{{{_WS}({pair}({_WS},{_WS}{pair}){{0,}})?{_WS}\}}"


def _array_regex(depth: int) -> str:
    """outlines-core's `parse_array_type` for an array without `items`."""
    item = "|".join([_BOOLEAN, "null", _NUMBER, _INTEGER, _STRING, *_nested(depth)])
    return rf"\[{_WS}(({item})(,{_WS}({item})){{0,}})?{_WS}\]"


def _nested(depth: int) -> list[str]:
    return [_object_regex(depth - 1), _array_regex(depth - 1)] if depth > 0 else []


# outlines-core src/json_schema/types.rs (TGI passes no whitespace pattern).
_WS = r"[ ]?"
_STRING = r'"([^"\\\x00-\x1F\x7F-\x9F]|\\["\\])*"'
_INTEGER = r"(-)?(0|[1-9][0-9]*)"
_NUMBER = r"((-)?(0|[1-9][0-9]*))(\.[0-9]+)?([eE][+-][0-9]+)?"
_BOOLEAN = r"(true|false)"
# What outlines-core compiles `{"type": "object"}` to (depth 2, its default).
JSON_OBJECT_REGEX = _object_regex(2)


def _needs_closing_brace(arguments: str) -> bool:
    try:
        json.loads(arguments)
    except ValueError:
        try:
            json.loads(arguments + "}")
        except ValueError:
            return False
        return True
    return False
