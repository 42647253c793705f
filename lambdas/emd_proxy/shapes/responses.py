"""The OpenAI Responses API, answered from the chat pipeline (stateless).

The request is translated by shapes/responses_input.py; here are the answers:
`from_completion` turns the folded `chat.completion` into a Response object, and
`ResponseEvents` renders the normalised chunk stream as the Responses stream:
`event: <type>` + `data: <json>` events numbered by `sequence_number` from 0,

    response.created, response.in_progress,
    per output item: response.output_item.added,
      reasoning: response.content_part.added, response.reasoning_text.delta...,
                 response.reasoning_text.done, response.content_part.done
      message:   response.content_part.added, response.output_text.delta...,
                 response.output_text.done, response.content_part.done
      call:      response.function_call_arguments.delta..., ...arguments.done
    response.output_item.done,
    response.completed | response.incomplete (a failure after the start:
    response.failed, with the Response's `error`)

and no `[DONE]` (OpenAI sends none). Output items come in the model's order: its
reasoning, its text, its function calls. Nothing is stored: every Response says
`store: false`."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic_core import to_json

from ..chunks import Batch
from ..errors import InvalidRequestError, ProxyError, RateLimitError
from ..schemas.responses import ResponsesRequest
from ..sse import KEEPALIVE

# chat finish reasons that leave a response incomplete, with OpenAI's reason.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


# --- the Response object -------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """What every Response of one request carries besides its output: its id and
    creation time, the public model id and the request fields OpenAI echoes."""

    id: str
    created_at: int
    echo: dict[str, Any]

    @classmethod
    def of(cls, req: ResponsesRequest, model: str) -> Envelope:
        text = req.text.model_dump(exclude_none=True) if req.text else {}
        text.setdefault("format", {"type": "text"})
        reasoning = req.reasoning.model_dump(exclude_none=True) if req.reasoning else {}
        echo = {
            "background": False,
            "instructions": req.instructions,
            "max_output_tokens": req.max_output_tokens,
            "max_tool_calls": req.max_tool_calls,
            "model": model,
            "parallel_tool_calls": req.parallel_tool_calls is not False,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None, **reasoning},
            "store": False,  # whatever was asked: the gateway keeps nothing
            "temperature": req.temperature,
            "text": text,
            "tool_choice": req.tool_choice if req.tool_choice is not None else "auto",
            "tools": [_echo_tool(t) for t in req.tools or []],
            "top_p": req.top_p,
            "truncation": req.truncation or "disabled",
            "user": req.user,
            "metadata": req.metadata or {},
        }
        return cls(new_id("resp"), int(time.time()), echo)

    def response(
        self,
        status: str,
        output: list[dict[str, Any]],
        *,
        usage: dict[str, Any] | None = None,
        incomplete: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        done = status in ("completed", "incomplete", "failed")
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "completed_at": int(time.time()) if status == "completed" else None,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            **self.echo,
            "output": output,
            "usage": usage if done else None,
        }


def _echo_tool(tool: dict[str, Any]) -> dict[str, Any]:
    fields = ("name", "description", "parameters", "strict")
    return {"type": "function", **{name: tool.get(name) for name in fields}}


def response_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """chat usage -> Responses usage (None when the engine reported none)."""
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(cached), "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(reasoning)},
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def reasoning_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [{"type": "reasoning_text", "text": text}]
    return {"id": item_id, "type": "reasoning", "summary": [], "content": content, "status": status}


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [output_text(text)]
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "content": content,
        "role": "assistant",
    }


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }


def from_completion(completion: dict[str, Any], envelope: Envelope) -> dict[str, Any]:
    """The Response for a folded `chat.completion` (one choice: n is never set)."""
    choice = completion["choices"][0]
    message = choice["message"]
    reasoning = message.get("reasoning_content") or ""
    text = message.get("content") or ""
    calls = message.get("tool_calls") or []
    output = []
    if reasoning:
        output.append(reasoning_item(new_id("rs"), reasoning, "completed"))
    if text or not (calls or reasoning):
        output.append(message_item(new_id("msg"), text, "completed"))
    for call in calls:
        function = call["function"]
        output.append(
            call_item(
                new_id("fc"), call["id"], function["name"], function["arguments"], "completed"
            )
        )
    incomplete = _INCOMPLETE.get(choice.get("finish_reason") or "stop")
    if incomplete:
        output[-1]["status"] = "incomplete"  # the item the model was writing
    return envelope.response(
        "incomplete" if incomplete else "completed",
        output,
        usage=response_usage(completion.get("usage")),
        incomplete=incomplete,
    )


def response_error(exc: ProxyError) -> dict[str, Any]:
    """A failure as the Response's `error` (OpenAI's codes; our type kept)."""
    if isinstance(exc, RateLimitError):
        code = "rate_limit_exceeded"
    elif isinstance(exc, InvalidRequestError):
        code = "invalid_prompt"
    else:
        code = "server_error"
    return {"code": code, "message": exc.message, "param": exc.param, "type": exc.type}


# --- the stream ----------------------------------------------------------------------


@dataclass
class _Item:
    """One output item being streamed."""

    index: int
    kind: str  # "reasoning", "message" or "function_call"
    id: str
    text: list[str] = field(default_factory=list)  # text, reasoning or arguments
    call_id: str = ""
    name: str = ""

    def snapshot(self, status: str) -> dict[str, Any]:
        text = "".join(self.text)
        if self.kind == "function_call":
            return call_item(self.id, self.call_id, self.name, text, status)
        done = status != "in_progress"
        if self.kind == "reasoning":
            return reasoning_item(self.id, text if done else None, status)
        return message_item(self.id, text if done else None, status)

    def part(self) -> dict[str, Any]:
        text = "".join(self.text)
        if self.kind == "reasoning":
            return {"type": "reasoning_text", "text": text}
        return output_text(text)


class ResponseEvents:
    """The Responses stream of one request (streaming.Renderer): text and reasoning
    items close when another item starts; function calls stay open until the end,
    so fragments of parallel calls may interleave."""

    media_type: Final = "text/event-stream"
    keepalive: Final = KEEPALIVE

    def __init__(self, envelope: Envelope) -> None:
        self.envelope = envelope
        self._sequence = 0
        self._items: list[_Item] = []
        self._done: dict[int, dict[str, Any]] = {}  # output index -> finished item
        self._text: _Item | None = None  # the open reasoning or message item
        self._calls: dict[int, _Item] = {}  # chat tool-call index -> open call item
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + to_json(payload) + b"\n\n"

    def open(self) -> bytes:
        created = self.envelope.response("in_progress", [])
        return self._event("response.created", response=created) + self._event(
            "response.in_progress", response=created
        )

    def batch(self, items: Batch) -> bytes:
        out: list[bytes] = []
        for chunk in items:
            if chunk.get("usage"):
                self._usage = chunk["usage"]
            for choice in chunk["choices"]:
                delta = choice.get("delta") or {}
                if delta.get("reasoning_content"):
                    out += self._text_delta("reasoning", delta["reasoning_content"])
                if delta.get("content"):
                    out += self._text_delta("message", delta["content"])
                for call in delta.get("tool_calls") or ():
                    out += self._call_delta(call)
                self._finish = choice.get("finish_reason") or self._finish
        return b"".join(out)

    def close(self) -> bytes:
        incomplete = _INCOMPLETE.get(self._finish or "stop")
        out = self._close_open(incomplete is not None)
        if not self._items:  # an empty answer is still one (empty) message
            self._text = _Item(0, "message", new_id("msg"))
            out += self._start(self._text)
            out += self._close_open(incomplete is not None)
        final = self.envelope.response(
            "incomplete" if incomplete else "completed",
            [self._done[i] for i in sorted(self._done)],
            usage=response_usage(self._usage),
            incomplete=incomplete,
        )
        kind = "response.incomplete" if incomplete else "response.completed"
        return b"".join(out) + self._event(kind, response=final)

    def error(self, exc: ProxyError) -> bytes:
        output = [self._done.get(item.index) or item.snapshot("incomplete") for item in self._items]
        failed = self.envelope.response("failed", output, error=response_error(exc))
        return self._event("response.failed", response=failed)

    def done(self) -> bytes:
        return b""

    # --- items ---------------------------------------------------------------------

    def _start(self, item: _Item) -> list[bytes]:
        self._items.append(item)
        added = item.snapshot("in_progress")
        out = [self._event("response.output_item.added", output_index=item.index, item=added)]
        if item.kind != "function_call":
            part = {**item.part(), "text": ""}
            out.append(self._event("response.content_part.added", **self._at(item), part=part))
        return out

    def _at(self, item: _Item) -> dict[str, Any]:
        where = {"item_id": item.id, "output_index": item.index}
        return where if item.kind == "function_call" else {**where, "content_index": 0}

    def _text_delta(self, kind: str, text: str) -> list[bytes]:
        out: list[bytes] = []
        if self._text is None or self._text.kind != kind:
            out += self._close_text("completed")
            prefix = "rs" if kind == "reasoning" else "msg"
            self._text = _Item(len(self._items), kind, new_id(prefix))
            out += self._start(self._text)
        self._text.text.append(text)
        name = "reasoning_text" if kind == "reasoning" else "output_text"
        where = self._at(self._text)
        out.append(self._event(f"response.{name}.delta", **where, delta=text, **_logprobs(kind)))
        return out

    def _call_delta(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        function = call.get("function") or {}
        item = self._calls.get(call["index"])
        if item is None:  # the normaliser puts the id and name on the first fragment
            out += self._close_text("completed")
            item = _Item(
                len(self._items),
                "function_call",
                new_id("fc"),
                call_id=call.get("id") or new_id("call"),
                name=function.get("name") or "",
            )
            self._calls[call["index"]] = item
            out += self._start(item)
        arguments = function.get("arguments") or ""
        if arguments:
            item.text.append(arguments)
            out.append(
                self._event(
                    "response.function_call_arguments.delta", **self._at(item), delta=arguments
                )
            )
        return out

    def _close_text(self, status: str) -> list[bytes]:
        item, self._text = self._text, None
        if item is None:
            return []
        name = "reasoning_text" if item.kind == "reasoning" else "output_text"
        text = "".join(item.text)
        return [
            self._event(
                f"response.{name}.done", **self._at(item), text=text, **_logprobs(item.kind)
            ),
            self._event("response.content_part.done", **self._at(item), part=item.part()),
            self._item_done(item, status),
        ]

    def _item_done(self, item: _Item, status: str) -> bytes:
        self._done[item.index] = done = item.snapshot(status)
        return self._event("response.output_item.done", output_index=item.index, item=done)

    def _close_open(self, incomplete: bool) -> list[bytes]:
        """Closes what is still open, in output order; when the answer was cut, the
        last item is the incomplete one."""
        last = len(self._items) - 1
        open_items = sorted(
            [*self._calls.values(), *([self._text] if self._text else [])], key=lambda i: i.index
        )
        out: list[bytes] = []
        for item in open_items:
            status = "incomplete" if incomplete and item.index == last else "completed"
            if item.kind == "function_call":
                out.append(
                    self._event(
                        "response.function_call_arguments.done",
                        **self._at(item),
                        arguments="".join(item.text),
                    )
                )
                out.append(self._item_done(item, status))
            else:
                out += self._close_text(status)
        self._calls.clear()
        return out


def _logprobs(kind: str) -> dict[str, Any]:
    # Text events carry logprobs (none: the Responses `include` is not forwarded).
    return {} if kind == "reasoning" else {"logprobs": []}
