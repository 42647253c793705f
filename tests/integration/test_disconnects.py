"""A client that goes away cancels its upstream calls, on every route, before and
after its answer starts; and a raw stream cut by a failure is visibly cut.

A `stall` fault holds an upstream call far longer than the test waits (STALL_S); the
client gives up after LEAVE_AFTER_S (httpx's read timeout, then its connection closes),
and the emulator must see each call it was holding end well before the stall would
have: `calls_in_flight` (calls whose answer has not started) and `streams_open` count
what it is still holding."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from emd.local.emulator import EmulatorStats
from emd.local.gateway import LocalGateway

from .conftest import E5, ECHO, KEY, LMI, RAW, WHISPER, endpoint_of

STALL_S = 30.0  # what the upstream would take
LEAVE_AFTER_S = 1.0  # when the client gives up
CLOSED_WITHIN_S = 8.0  # how long the upstream may take to see it (far below STALL_S)
HI = [{"role": "user", "content": "hello disconnect world"}]
SPEECH = Path(__file__).parent.parent / "data" / "speech.wav"


def stats(gateway: LocalGateway) -> EmulatorStats:
    assert gateway.stack.emulator is not None
    return gateway.stack.emulator.stats


def leave_early(gateway: LocalGateway, path: str, **request: Any) -> None:
    """POST, give up after LEAVE_AFTER_S, close the connection."""
    timeout = httpx.Timeout(30.0, read=LEAVE_AFTER_S)
    with (
        httpx.Client(
            base_url=gateway.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=timeout
        ) as http,
        pytest.raises(httpx.ReadTimeout),
        http.stream("POST", path, **request) as response,
    ):
        response.read()


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + CLOSED_WITHIN_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def assert_calls_abandoned(gateway: LocalGateway, before: EmulatorStats, calls: int) -> None:
    now = stats(gateway)
    wait_until(
        lambda: now.calls_abandoned >= before.calls_abandoned + calls,
        f"the upstream still holds calls the client left: {now}",
    )
    wait_until(lambda: now.calls_in_flight == 0, f"calls still in flight upstream: {now}")


def snapshot(gateway: LocalGateway) -> EmulatorStats:
    s = stats(gateway)
    return EmulatorStats(**{k: v for k, v in vars(s).items() if k != "by_endpoint"})


def stall(gateway: LocalGateway, model: str, times: int = 1, **params: object) -> None:
    gateway.stack.fault(endpoint_of(gateway, model), "stall", times, seconds=STALL_S, **params)


# --- before the answer starts: the call is cancelled ---------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        # One plain InvokeEndpoint (max_tokens fits the plain-invoke budget).
        ("/chat/completions", {"model": ECHO, "messages": HI, "max_tokens": 16}),
        # No max_tokens: the answer is a stream folded (stalled before it starts).
        ("/chat/completions", {"model": ECHO, "messages": HI}),
        ("/completions", {"model": ECHO, "prompt": "hello", "max_tokens": 16}),
        ("/completions", {"model": ECHO, "prompt": "hello"}),
        ("/responses", {"model": ECHO, "input": "hello"}),
        ("/messages", {"model": ECHO, "messages": HI, "max_tokens": 16}),
        ("/invocations", {"model": RAW, "input": {"messages": HI}}),
        # A stream the client drops before its first byte.
        ("/chat/completions", {"model": ECHO, "messages": HI, "stream": True}),
        ("/invocations", {"model": RAW, "input": {"messages": HI}, "stream": True}),
    ],
    ids=[
        "chat-plain",
        "chat-folded",
        "completions-plain",
        "completions-folded",
        "responses",
        "messages",
        "invocations",
        "chat-stream",
        "invocations-stream",
    ],
)
def test_a_client_that_leaves_cancels_the_call(
    gateway: LocalGateway, path: str, body: dict[str, Any]
) -> None:
    before = snapshot(gateway)
    stall(gateway, ECHO)
    leave_early(gateway, path, json=body)
    assert_calls_abandoned(gateway, before, 1)


def test_embeddings_batches_are_all_cancelled(gateway: LocalGateway) -> None:
    before = snapshot(gateway)
    stall(gateway, E5, times=3)
    inputs = [f"sentence number {i}" for i in range(70)]  # three batches of up to 32
    leave_early(gateway, "/embeddings", json={"model": E5, "input": inputs})
    assert_calls_abandoned(gateway, before, 3)


def test_rerank_batches_are_all_cancelled(gateway: LocalGateway) -> None:
    before = snapshot(gateway)
    stall(gateway, E5, times=2)
    documents = [f"document number {i}" for i in range(40)]
    leave_early(gateway, "/rerank", json={"model": E5, "query": "q", "documents": documents})
    assert_calls_abandoned(gateway, before, 2)


def test_a_transcription_is_cancelled(gateway: LocalGateway) -> None:
    before = snapshot(gateway)
    stall(gateway, WHISPER)
    leave_early(
        gateway,
        "/audio/transcriptions",
        data={"model": WHISPER},
        files={"file": ("speech.wav", SPEECH.read_bytes(), "audio/wav")},
    )
    assert_calls_abandoned(gateway, before, 1)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "folded"])
def test_a_stream_that_never_sends_its_first_part_is_closed(
    gateway: LocalGateway, stream: bool
) -> None:
    """The upstream answered (headers) but sends no part: `started()` waits on it."""
    now = stats(gateway)
    cancelled = now.streams_cancelled
    stall(gateway, ECHO, after=0)
    body = {"model": ECHO, "messages": HI, "stream": stream}
    leave_early(gateway, "/chat/completions", json=body)
    wait_until(lambda: now.streams_cancelled > cancelled, f"the stream is still open: {now}")
    assert now.streams_open == 0


def test_a_folded_stream_is_closed_mid_answer(gateway: LocalGateway) -> None:
    now = stats(gateway)
    cancelled = now.streams_cancelled
    stall(gateway, ECHO, after=1)
    body = {"model": ECHO, "messages": [{"role": "user", "content": "one two three four"}]}
    leave_early(gateway, "/chat/completions", json=body)
    wait_until(lambda: now.streams_cancelled > cancelled, f"the stream is still open: {now}")
    assert now.streams_open == 0


def test_the_gateway_keeps_serving_after_clients_left(http: httpx.Client) -> None:
    answer = http.post("/chat/completions", json={"model": ECHO, "messages": HI})
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "hello disconnect world"


# --- after the stream starts: a cut raw stream is visibly cut -----------------------


def raw_stream(model: str) -> dict[str, Any]:
    chat = {"messages": [{"role": "user", "content": "one two three four five six"}]}
    return {"model": model, "input": {**chat, "stream": True}, "stream": True}


def test_a_cut_json_lines_stream_ends_in_a_broken_body(
    gateway: LocalGateway, http: httpx.Client
) -> None:
    """LMI streams JSON lines, which have no error framing: the chunked body is cut
    off, so the client's HTTP library raises instead of handing over a short answer."""
    gateway.stack.fault(endpoint_of(gateway, LMI), "stream_error", after=2)
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", "/invocations", json=raw_stream(LMI)) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/jsonlines")
        for data in response.iter_bytes():
            received += data
    # What arrived before the failure arrived whole, line by line.
    assert received.count(b"\n") >= 2
    # The gateway still serves on new connections.
    assert http.post("/invocations", json={"model": RAW, "input": {"messages": HI}}).is_success


def test_a_raw_stream_that_fails_at_once_keeps_its_status(
    gateway: LocalGateway, http: httpx.Client
) -> None:
    """A failure before the first part is answered with its own status and error body,
    not a 200 that is then cut."""
    gateway.stack.fault(endpoint_of(gateway, LMI), "stream_error", after=0)
    response = http.post("/invocations", json=raw_stream(LMI))
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_error"


def test_an_uncut_json_lines_stream_ends_cleanly(http: httpx.Client) -> None:
    with http.stream("POST", "/invocations", json=raw_stream(LMI)) as response:
        text = response.read().decode()
    assert response.status_code == 200
    assert text.endswith("\n\n")  # LMI's own end: an empty line, no [DONE]


def test_a_cut_sse_raw_stream_still_ends_with_an_error_event_and_done(
    gateway: LocalGateway, http: httpx.Client
) -> None:
    gateway.stack.fault(endpoint_of(gateway, ECHO), "stream_error", after=2)
    with http.stream("POST", "/invocations", json=raw_stream(RAW)) as response:
        text = response.read().decode()
    assert '"type":"upstream_error"' in text.replace(" ", "")
    assert text.endswith("data: [DONE]\n\n")
