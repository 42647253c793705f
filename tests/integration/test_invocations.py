"""POST /v1/invocations: the raw payload reaches the container and its answer comes
back untouched, streamed when asked."""

from __future__ import annotations

import json

import httpx

from emd.local.gateway import LocalGateway

from .conftest import ECHO, GHOST, RAW, endpoint_of

CHAT = {"messages": [{"role": "user", "content": "raw bytes please"}]}


def test_raw_round_trip_returns_the_container_answer(http: httpx.Client) -> None:
    response = http.post("/invocations", json={"model": RAW, "input": CHAT})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    # The container's own answer: its served model name, not our public id.
    assert answer["model"] == "echo"
    assert answer["choices"][0]["message"]["content"] == "raw bytes please"


def test_raw_stream_passes_the_container_sse_through(http: httpx.Client) -> None:
    body = {"model": RAW, "input": {**CHAT, "stream": True}, "stream": True}
    with http.stream("POST", "/invocations", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    assert text.endswith("data: [DONE]\n\n")
    chunks = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    assert chunks[0]["model"] == "echo"  # untouched: the container's own chunks
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content == "raw bytes please"


def test_raw_container_error_keeps_its_status_class(
    http: httpx.Client, gateway: LocalGateway
) -> None:
    response = http.post("/invocations", json={"model": RAW, "input": {"no": "messages"}})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    gateway.stack.fault(endpoint_of(gateway, ECHO), "throttle")
    throttled = http.post("/invocations", json={"model": RAW, "input": CHAT})
    assert throttled.status_code == 429


def test_raw_route_only_serves_models_with_the_invocations_family(http: httpx.Client) -> None:
    response = http.post("/invocations", json={"model": GHOST, "input": CHAT})
    assert response.status_code == 400
    assert "invocations" in response.json()["error"]["message"]


def test_non_json_input_must_be_a_string(http: httpx.Client) -> None:
    response = http.post(
        "/invocations", json={"model": RAW, "input": {"a": 1}, "content_type": "text/csv"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input"
