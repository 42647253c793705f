"""The API shapes our proxy serves over a chat model, side by side: chat completions,
legacy completions, the Responses API and Anthropic's Messages API, each against
`ours` (the proxy in front of the emulator and echo/local), with the same baseline as
the chat tables (the emulator called directly).

Every request is checked, warm-up included: status 200 and the echo's exact text
(streams: every event parsed and the shape's last event there), so a broken route
fails the run instead of looking fast."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from .chat import FIRST_TOKEN, MESSAGE, json_headers
from .fleet import API_KEY, OURS_MODEL, Endpoint
from .load import Target, closing, interleaved, open_stream
from .stats import QS, summary_ms

MAX_TOKENS = 16  # as the chat tables' body: the 13-word echo fits
BASELINE = "backend"  # the row every shape's added latency is taken over

# --- reading an answer ------------------------------------------------------------------
Event = tuple[str, Any]  # (SSE event name or "", parsed data; "[DONE]" as a string)


def sse_events(raw: bytes) -> list[Event]:
    """Every event of an SSE body, comments (keep-alives) skipped."""
    events: list[Event] = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = "", []
        for line in block.decode().split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            text = "\n".join(data)
            events.append((name, text if text == "[DONE]" else json.loads(text)))
    return events


def ends_with(events: list[Event], last: str) -> None:
    """The stream's last event is `last` (`[DONE]`, or an event type), and only the
    OpenAI chat shapes send [DONE]."""
    final = events[-1][1] if events else None
    kind = final if final == "[DONE]" else (final or {}).get("type")
    if kind != last:
        raise ValueError(f"the stream ended with {kind!r}, not {last!r}")
    if last != "[DONE]" and any(data == "[DONE]" for _, data in events):
        raise ValueError("[DONE] in a stream that must not have one")


def chat_text(raw: bytes, stream: bool) -> str:
    if not stream:
        return json.loads(raw)["choices"][0]["message"]["content"]
    events = sse_events(raw)
    ends_with(events, "[DONE]")
    chunks = [d for _, d in events[:-1] if d["choices"]]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)


def completions_text(raw: bytes, stream: bool) -> str:
    if not stream:
        return json.loads(raw)["choices"][0]["text"]
    events = sse_events(raw)
    ends_with(events, "[DONE]")
    return "".join(d["choices"][0]["text"] for _, d in events[:-1] if d["choices"])


def responses_text(raw: bytes, stream: bool) -> str:
    if not stream:
        response = json.loads(raw)
        if response["status"] != "completed":
            raise ValueError(f"status {response['status']!r}")
        return "".join(
            part["text"]
            for item in response["output"]
            if item["type"] == "message"
            for part in item["content"]
            if part["type"] == "output_text"
        )
    events = sse_events(raw)
    ends_with(events, "response.completed")
    return "".join(d["delta"] for _, d in events if d["type"] == "response.output_text.delta")


def messages_text(raw: bytes, stream: bool) -> str:
    if not stream:
        message = json.loads(raw)
        if message["type"] != "message":
            raise ValueError(f"type {message['type']!r}")
        return "".join(b["text"] for b in message["content"] if b["type"] == "text")
    events = sse_events(raw)
    ends_with(events, "message_stop")
    deltas = [d["delta"] for _, d in events if d["type"] == "content_block_delta"]
    return "".join(d["text"] for d in deltas if d["type"] == "text_delta")


def backend_text(raw: bytes, stream: bool) -> str:
    """The emulator: its plain answer is the container's chat completion; its stream
    is AWS event-stream whose PayloadParts carry the container's chat SSE."""
    if not stream:
        return chat_text(raw, False)
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    payload = b""
    for message in buffer:
        if message.headers.get(":message-type") != "event":
            raise ValueError(f"event-stream {message.headers}: {message.payload[:200]!r}")
        payload += message.payload
    return chat_text(payload, True)


# --- the shapes ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    name: str
    path: str
    body: Callable[[bool], dict[str, Any]]  # stream -> request body
    text: Callable[[bytes, bool], str]  # (raw body, streamed) -> the answer's text
    anthropic_auth: bool = False  # x-api-key, as the anthropic SDK and Claude Code send it


def _json(**fields: Any) -> Callable[[bool], dict[str, Any]]:
    def body(stream: bool) -> dict[str, Any]:
        out = {"model": OURS_MODEL, **fields}
        return {**out, "stream": True} if stream else out

    return body


USER = [{"role": "user", "content": MESSAGE}]
SHAPES = (
    Shape("chat", "/v1/chat/completions", _json(messages=USER, max_tokens=MAX_TOKENS), chat_text),
    # Without max_tokens a non-stream answer streams from the engine and is folded
    # (it may outrun InvokeEndpoint's 60 s); with it, one plain invoke (generation.py).
    # Streamed, the two rows make the same call.
    Shape("chat, unbounded", "/v1/chat/completions", _json(messages=USER), chat_text),
    Shape(
        "completions",
        "/v1/completions",
        _json(prompt=MESSAGE, max_tokens=MAX_TOKENS),
        completions_text,
    ),
    Shape(
        "responses",
        "/v1/responses",
        _json(input=MESSAGE, max_output_tokens=MAX_TOKENS),
        responses_text,
    ),
    Shape(
        "messages",
        "/v1/messages",
        _json(max_tokens=MAX_TOKENS, messages=USER),
        messages_text,
        anthropic_auth=True,
    ),
)


@dataclass
class ShapeTarget(Target):
    """A target that knows how to read its answer, so every call can be checked."""

    text: Callable[[bytes, bool], str] = chat_text
    stream: bool = False
    checked: int = 0  # requests whose answer was read and found right

    def check(self, status: int, raw: bytes) -> None:
        if status != 200:
            raise RuntimeError(f"{self.name}: HTTP {status}: {raw[:300]!r}")
        try:
            text = self.text(raw, self.stream)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise RuntimeError(f"{self.name}: unreadable answer ({exc!r}): {raw[:300]!r}") from exc
        # The legacy completion's text starts with a space, as vLLM's does.
        if text.strip() != MESSAGE:
            raise RuntimeError(f"{self.name} answered {text!r}, not the echo")
        self.checked += 1


def shape_targets(eps: dict[str, Endpoint], stream: bool) -> list[ShapeTarget]:
    """The baseline (the emulator direct, as for chat) first, then each shape on ours."""
    backend, ours = eps["ours_backend"], eps["ours"].server
    assert ours is not None
    url, body = backend.request(stream=stream, max_tokens=MAX_TOKENS)
    rows = [(BASELINE, url, body, backend.headers, backend_text)]
    for shape in SHAPES:
        headers = json_headers(None if shape.anthropic_auth else API_KEY)
        if shape.anthropic_auth:
            headers["x-api-key"] = API_KEY
        body = json.dumps(shape.body(stream)).encode()
        rows.append((shape.name, ours.url + shape.path, body, headers, shape.text))
    return [
        ShapeTarget(
            name, httpx.Client(timeout=httpx.Timeout(30.0)), url, body, headers, text, stream
        )
        for name, url, body, headers, text in rows
    ]


def call_checked(target: Target) -> float:
    """Non-streaming: send -> whole body read; the answer checked after the clock."""
    assert isinstance(target, ShapeTarget)
    started = time.perf_counter()
    response = target.client.post(target.url, content=target.body, headers=target.headers)
    elapsed = time.perf_counter() - started
    target.check(response.status_code, response.content)
    return elapsed


def first_token_checked(target: Target) -> float:
    """Streaming: send -> the first bytes holding the answer's first word (as the chat
    TTFT table measures it); the stream is read to its end and checked whole."""
    assert isinstance(target, ShapeTarget)
    started = time.perf_counter()
    elapsed = None
    raw = bytearray()
    with open_stream(target) as response:
        for chunk in response.iter_raw():
            raw += chunk
            if elapsed is None and FIRST_TOKEN in raw:
                elapsed = time.perf_counter() - started
        status = response.status_code
    target.check(status, bytes(raw))
    if elapsed is None:  # check() passed, so the word is there; this is for the type
        raise RuntimeError(f"{target.name}: no {FIRST_TOKEN!r} in the stream")
    return elapsed


# --- the measurement ---------------------------------------------------------------------
def bench_shapes(
    eps: dict[str, Endpoint], per_shape: int, block: int, ttft_per_shape: int
) -> dict[str, Any]:
    """Interleaved sequential calls, as the chat tables make them: one keep-alive
    client per row, blocks in A B C ... C B A order."""
    with closing(shape_targets(eps, stream=False)) as plain:
        latency, ran = interleaved(
            plain, call_checked, per_target=per_shape, block=block, warmup=50, budget_s=120
        )
        checked = {t.name: t.checked for t in plain}
    with closing(shape_targets(eps, stream=True)) as streamed:
        ttft, ttft_ran = interleaved(
            streamed,
            first_token_checked,
            per_target=ttft_per_shape,
            block=max(1, min(50, ttft_per_shape // 6)),
            warmup=20,
            budget_s=60,
        )
        checked_streams = {t.name: t.checked for t in streamed}
    base_lat, base_ttft = summary_ms(latency[BASELINE]), summary_ms(ttft[BASELINE])
    out: dict[str, Any] = {
        "model": OURS_MODEL,
        "requests_per_shape": ran,
        "block": block,
        "ttft_streams_per_shape": ttft_ran,
        "baseline": {
            "what": "the emulator's InvokeEndpoint (TTFT: its streaming call), direct",
            "latency_ms": base_lat,
            "ttft_ms": base_ttft,
            "checked": checked[BASELINE],
            "checked_streams": checked_streams[BASELINE],
        },
        "shapes": {},
    }
    for shape in SHAPES:
        lat, first = summary_ms(latency[shape.name]), summary_ms(ttft[shape.name])
        out["shapes"][shape.name] = {
            "path": shape.path,
            "latency_ms": lat,
            "added_latency_ms": {q: round(lat[q] - base_lat[q], 3) for q in QS},
            "ttft_ms": first,
            "ttft_added_ms": {q: round(first[q] - base_ttft[q], 3) for q in QS},
            # Warm-up included: every one of these was a 200 with the echo's text.
            "checked": checked[shape.name],
            "checked_streams": checked_streams[shape.name],
        }
    return out
