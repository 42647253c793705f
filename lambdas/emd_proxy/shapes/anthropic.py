"""Anthropic's Messages API answers, from the chat pipeline: the normalised chunk
stream rendered as Anthropic's events (`MessageEvents`), the folded `chat.completion`
converted into a `message` (`to_message`), and Anthropic's error shape, chosen by path
for every error (`error_body_for`). The request side is anthropic_request.py.

The event sequence is Anthropic's: `message_start` (usage not known yet: zeros),
one `ping`, then per content block (thinking, text, tool_use; indexes from 0)
`content_block_start`, its deltas and `content_block_stop`, then `message_delta`
(stop reason and the final usage, which the SDK's accumulator takes over
`message_start`'s) and `message_stop`. Keep-alives are `ping` events; a failure after
the start is one `event: error`; there is no `[DONE]`.

The middleware imports this module for the error shape, so it imports no schema
(every Lambda pays for what the middleware imports)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from pydantic_core import to_json

from ..errors import ProxyError, UpstreamError

if TYPE_CHECKING:
    from ..chunks import Batch

MESSAGES_PATH: Final = "/v1/messages"


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def tool_use_id() -> str:
    return f"toolu_{uuid.uuid4().hex[:24]}"


# --- answer: the folded chat.completion -> message ------------------------------------


def stop_reason(
    finish: str | None, matched: Any, stop_sequences: Sequence[str], *, called: bool = False
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) from OpenAI's finish_reason and vLLM's
    `stop_reason` (the stop string that matched; TGI's stream fixer sets it from the
    stop it cut)."""
    if finish == "length":
        return "max_tokens", None
    # vLLM finishes a call of a named tool with `stop`, as OpenAI does; Anthropic's
    # answer to a forced tool is `tool_use` all the same.
    if called or finish in ("tool_calls", "function_call"):
        return "tool_use", None
    if finish == "content_filter":
        return "refusal", None
    if isinstance(matched, str) and matched in stop_sequences:
        return "stop_sequence", matched
    return "end_turn", None


def _usage(usage: dict[str, Any] | None) -> dict[str, int]:
    usage = usage or {}
    return {
        "input_tokens": int(usage.get("prompt_tokens") or 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
    }


def to_message(completion: dict[str, Any], *, stop_sequences: Sequence[str] = ()) -> dict[str, Any]:
    """A `chat.completion` as Anthropic's `message`: thinking, text, then tool_use
    blocks. The choice's `stop_reason` (vLLM's) names the stop sequence that ended it."""
    choice = completion["choices"][0]
    answer = choice["message"]
    content: list[dict[str, Any]] = []
    if answer.get("reasoning_content"):
        content.append(
            {"type": "thinking", "thinking": answer["reasoning_content"], "signature": ""}
        )
    if answer.get("content"):
        content.append({"type": "text", "text": answer["content"]})
    for call in answer.get("tool_calls") or ():
        function = call["function"]
        content.append(
            {
                "type": "tool_use",
                "id": tool_use_id(),
                "name": function["name"],
                "input": _tool_input(function["arguments"]),
            }
        )
    reason, sequence = stop_reason(
        choice.get("finish_reason"),
        choice.get("stop_reason"),
        stop_sequences,
        called=bool(answer.get("tool_calls")),
    )
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": completion["model"],
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": _usage(completion.get("usage")),
    }


def _tool_input(arguments: str) -> dict[str, Any]:
    """A tool_use `input` must be an object: arguments that are not one are the
    model's failure, said plainly rather than passed on as something else."""
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise UpstreamError("The model called a tool with arguments that are not a JSON object.")
    return value


# --- stream: normalised chunks -> Anthropic events ------------------------------------


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + to_json(data) + b"\n\n"


PING: Final = sse_event("ping", {"type": "ping"})


class MessageEvents:
    """One streamed message (a `streaming.Renderer`): the state is the open content
    block (its kind and index), the tool calls' blocks, and what `message_delta`
    reports at the end."""

    media_type: Final = "text/event-stream"
    keepalive: Final = PING

    def __init__(self, model: str, stop_sequences: Sequence[str] = ()) -> None:
        self.model = model
        self.stop_sequences = list(stop_sequences)
        self.id = message_id()
        self._index = -1  # the latest block's index
        self._open: str | None = None  # the open block's kind: thinking, text, tool_use
        self._tool_blocks: dict[int, int] = {}  # OpenAI tool-call index -> block index
        self._finish: str | None = None
        self._matched: Any = None
        self._usage: dict[str, Any] | None = None

    def open(self) -> bytes:
        message = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # Not known until the engine's usage chunk: message_delta has the totals.
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return sse_event("message_start", {"type": "message_start", "message": message}) + PING

    def batch(self, items: Batch) -> bytes:
        out: list[bytes] = []
        for chunk in items:
            if chunk.get("usage"):
                self._usage = chunk["usage"]
            for choice in chunk["choices"]:
                if choice.get("index", 0) != 0:
                    continue  # a message is one answer
                self._delta(choice.get("delta") or {}, out)
                if choice.get("finish_reason"):
                    self._finish = choice["finish_reason"]
                if choice.get("stop_reason") is not None:
                    self._matched = choice["stop_reason"]
        return b"".join(out)

    def close(self) -> bytes:
        out: list[bytes] = []
        self._stop_block(out)
        reason, sequence = stop_reason(
            self._finish, self._matched, self.stop_sequences, called=bool(self._tool_blocks)
        )
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        usage = _usage(self._usage)
        out.append(
            sse_event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        )
        out.append(sse_event("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def error(self, exc: ProxyError) -> bytes:
        return sse_event("error", error_body(exc))

    def done(self) -> bytes:
        return b""

    # --- blocks ---------------------------------------------------------------------

    def _delta(self, delta: dict[str, Any], out: list[bytes]) -> None:
        thinking = delta.get("reasoning_content")
        if thinking:
            if self._open != "thinking":
                self._start_block("thinking", {"thinking": "", "signature": ""}, out)
            self._block_delta({"type": "thinking_delta", "thinking": thinking}, out)
        text = delta.get("content")
        if text:
            if self._open != "text":
                self._start_block("text", {"text": ""}, out)
            self._block_delta({"type": "text_delta", "text": text}, out)
        for call in delta.get("tool_calls") or ():
            function = call.get("function") or {}
            if call.get("id"):  # a call's first fragment (the normaliser's promise)
                block = {"id": tool_use_id(), "name": function.get("name") or "", "input": {}}
                self._start_block("tool_use", block, out)
                self._tool_blocks[call["index"]] = self._index
            arguments = function.get("arguments")
            index = self._tool_blocks.get(call.get("index", -1))
            if arguments and index is not None:
                partial = {"type": "input_json_delta", "partial_json": arguments}
                out.append(_delta_event(index, partial))

    def _start_block(self, kind: str, fields: dict[str, Any], out: list[bytes]) -> None:
        self._stop_block(out)
        self._index += 1
        self._open = kind
        start = {"type": "content_block_start", "index": self._index}
        out.append(
            sse_event("content_block_start", start | {"content_block": {"type": kind, **fields}})
        )

    def _block_delta(self, delta: dict[str, Any], out: list[bytes]) -> None:
        out.append(_delta_event(self._index, delta))

    def _stop_block(self, out: list[bytes]) -> None:
        if self._open is None:
            return
        if self._open == "thinking":
            # Anthropic signs thinking just before the block ends; nothing here can.
            self._block_delta({"type": "signature_delta", "signature": ""}, out)
        out.append(
            sse_event("content_block_stop", {"type": "content_block_stop", "index": self._index})
        )
        self._open = None


def _delta_event(index: int, delta: dict[str, Any]) -> bytes:
    return sse_event(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )


# --- errors ---------------------------------------------------------------------------

# Anthropic's error types by HTTP status (https://docs.anthropic.com/en/api/errors);
# 504 is the SDK's GatewayTimeoutError, whose body type is timeout_error.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def speaks_anthropic(path: str) -> bool:
    return path == MESSAGES_PATH or path.startswith(MESSAGES_PATH + "/")


def error_body(exc: ProxyError) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(exc.status) or (
        "api_error" if exc.status >= 500 else "invalid_request_error"
    )
    return {"type": "error", "error": {"type": kind, "message": exc.message}}


def error_body_for(path: str, exc: ProxyError) -> dict[str, Any]:
    """The one place an error's shape is chosen: Anthropic's on the /v1/messages
    routes (whatever raised it: the schema, the registry, the engine, the key
    check), OpenAI's everywhere else. The status and headers are the error's own."""
    return error_body(exc) if speaks_anthropic(path) else exc.body()
