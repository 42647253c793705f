"""SageMaker failures injected in the emulator, seen through the proxy with the SDK."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from emd.local.gateway import LocalGateway, start_local_gateway
from emd_proxy.settings import Settings

from .conftest import ECHO, RAW, endpoint_of

HI = [{"role": "user", "content": "hello fault world"}]


def inject(gateway: LocalGateway, kind: str, times: int = 1, **params: object) -> None:
    gateway.stack.fault(endpoint_of(gateway, ECHO), kind, times, **params)


@pytest.mark.parametrize("stream", [False, True])
def test_throttling_maps_to_429_with_retry_after(
    gateway: LocalGateway, client: openai.OpenAI, stream: bool
) -> None:
    inject(gateway, "throttle")
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=ECHO, messages=HI, stream=stream)
    assert info.value.status_code == 429
    assert info.value.code == "rate_limit_exceeded"
    assert int(info.value.response.headers["retry-after"]) >= 1


@pytest.fixture(scope="module")
def tuned() -> Iterator[LocalGateway]:
    """A second gateway with one upstream retry and a short keep-alive interval."""
    gw = start_local_gateway(
        [ECHO],
        keys={"default": "k"},
        settings=Settings(upstream_max_attempts=2, keepalive_seconds=0.2),
    )
    yield gw
    gw.stop()


def test_the_proxy_retries_throttling_before_the_first_byte(tuned: LocalGateway) -> None:
    assert tuned.stack.emulator is not None
    before = tuned.stack.emulator.stats.invocations
    tuned.stack.fault(endpoint_of(tuned, ECHO), "throttle", times=1)
    sdk = openai.OpenAI(base_url=tuned.base_url, api_key="k", max_retries=0)
    completion = sdk.chat.completions.create(model=ECHO, messages=HI)
    assert completion.choices[0].message.content == "hello fault world"
    assert tuned.stack.emulator.stats.invocations - before == 2


def test_a_stalled_stream_gets_keepalive_comments_then_completes(tuned: LocalGateway) -> None:
    tuned.stack.fault(endpoint_of(tuned, ECHO), "stall", seconds=1.0, after=2)
    with httpx.Client(timeout=10) as http:
        response = http.post(
            f"{tuned.base_url}/chat/completions",
            json={"model": ECHO, "messages": HI, "stream": True},
            headers={"Authorization": "Bearer k"},
        )
    assert response.status_code == 200
    assert ": keep-alive\n\n" in response.text
    assert response.text.endswith("data: [DONE]\n\n")
    sdk = openai.OpenAI(base_url=tuned.base_url, api_key="k", max_retries=0)
    tuned.stack.fault(endpoint_of(tuned, ECHO), "stall", seconds=0.5, after=1)
    stream = sdk.chat.completions.create(model=ECHO, messages=HI, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "hello fault world"


@pytest.mark.parametrize("stream", [False, True])
def test_container_4xx_is_400_with_the_container_message(
    gateway: LocalGateway, client: openai.OpenAI, stream: bool
) -> None:
    inject(gateway, "model_error", status=400, message="This model's maximum context is 8")
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=ECHO, messages=HI, stream=stream)
    assert "maximum context is 8" in info.value.message
    assert "arn:aws" not in info.value.message


def test_container_5xx_is_502(gateway: LocalGateway, client: openai.OpenAI) -> None:
    inject(gateway, "model_error", status=500, message="CUDA out of memory")
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=ECHO, messages=HI)
    assert info.value.status_code == 502
    assert info.value.code == "bad_upstream_response"


@pytest.mark.parametrize("stream", [False, True])
def test_timeout_is_504(gateway: LocalGateway, client: openai.OpenAI, stream: bool) -> None:
    inject(gateway, "timeout", seconds=0.2)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=ECHO, messages=HI, stream=stream)
    assert info.value.status_code == 504
    assert info.value.code == "upstream_timeout"


def slow(limit: float) -> dict[str, float]:
    """Echo's pacing for HI: three words 0.6 limits apart, longer than the limit."""
    return {"echo_delay_ms": limit * 600}


def test_a_long_answer_outlives_the_invoke_limit(
    gateway: LocalGateway, client: openai.OpenAI, short_invoke_limit: float
) -> None:
    """InvokeEndpoint must answer within 60 s (here scaled down); chat streams from the
    engine under the hood, so a long non-streaming answer still arrives (the same
    answer asked through InvokeEndpoint times out: the next test)."""
    emulator = gateway.stack.emulator
    assert emulator is not None
    streamed = emulator.stats.streams_finished
    completion = client.chat.completions.create(
        model=ECHO, messages=HI, extra_body=slow(short_invoke_limit)
    )
    assert completion.choices[0].message.content == "hello fault world"
    assert emulator.stats.streams_finished == streamed + 1


def test_raw_invocations_keep_the_invoke_limit(
    http: httpx.Client, short_invoke_limit: float
) -> None:
    body = {"model": RAW, "input": {"messages": HI, **slow(short_invoke_limit)}}
    response = http.post("/invocations", json=body)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"


def test_not_ready_is_503_with_retry_after(gateway: LocalGateway, client: openai.OpenAI) -> None:
    inject(gateway, "not_ready")
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=ECHO, messages=HI)
    assert info.value.status_code == 503
    assert info.value.code == "model_not_ready"
    assert int(info.value.response.headers["retry-after"]) > 0


def test_mid_stream_error_becomes_an_error_event_the_sdk_raises(
    gateway: LocalGateway, client: openai.OpenAI
) -> None:
    inject(gateway, "stream_error", after=2, message="GPU fell off the bus")
    stream = client.chat.completions.create(model=ECHO, messages=HI, stream=True)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)
    # SageMaker's text stays in the gateway's log; the client gets the request id.
    assert "GPU fell off the bus" not in info.value.message
    assert "The model failed while streaming (request req_" in info.value.message
    assert received, "the chunks before the failure reach the client"


def test_mid_stream_error_on_the_wire_is_one_event_then_done(
    gateway: LocalGateway, http: httpx.Client
) -> None:
    inject(gateway, "stream_error", after=1)
    response = http.post("/chat/completions", json={"model": ECHO, "messages": HI, "stream": True})
    assert response.status_code == 200
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    errors = [e for e in events if '"error"' in e]
    assert len(errors) == 1
    assert '"type":"upstream_error"' in errors[0]


def test_client_disconnect_closes_the_upstream_stream(
    gateway: LocalGateway, http: httpx.Client
) -> None:
    emulator = gateway.stack.emulator
    assert emulator is not None
    cancelled_before = emulator.stats.streams_cancelled
    words = " ".join(f"w{i}" for i in range(200))
    body = {
        "model": ECHO,
        "messages": [{"role": "user", "content": words}],
        "stream": True,
        "echo_delay_ms": 50,
    }
    with http.stream("POST", "/chat/completions", json=body) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    deadline = time.monotonic() + 5
    while emulator.stats.streams_cancelled == cancelled_before:
        assert time.monotonic() < deadline, "the upstream stream was not closed"
        time.sleep(0.02)
    # It stopped well before the 200 words x 50 ms the full answer would take.
    assert emulator.stats.streams_open == 0
