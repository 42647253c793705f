"""The gateway's side of scale to zero, end to end on the local stack: echo/local is an
inference component (the emulator answers SageMaker's no-capacity ValidationError at
zero copies, the local control plane wakes it with a simulated load time), and the
proxy's real botocore `sagemaker` client wakes it (AWS_ENDPOINT_URL_SAGEMAKER).

Streams hold their client with `: waking` comments and then answer; a non-stream
request waits `wake_wait_seconds`, then gets 503 model_scaling_from_zero with
Retry-After; requests during a wake join it (one UpdateInferenceComponentRuntimeConfig);
a client that hangs up during the hold stops the polling."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

import emd.local.control_plane
from emd.local.components import Components
from emd.local.gateway import LocalGateway
from emd_proxy.settings import Settings

from .conftest import ECHO, ECHO_COMPONENT, KEY, start_s2z_gateway

MESSAGE = "wake up and say this"
WAIT = 1.5  # wake_wait_seconds: non-stream requests
STREAM_WAIT = 3.0  # wake_stream_wait_seconds
POLL = 0.1
KEEPALIVE = 0.2
QUICK_LOAD = 0.5  # a wake inside both waits
SLOW_LOAD = 6.0  # a wake past both waits


@pytest.fixture(scope="module")
def s2z() -> Iterator[LocalGateway]:
    gw = start_s2z_gateway(
        Settings(
            upstream_max_attempts=1,
            keepalive_seconds=KEEPALIVE,
            wake_poll_seconds=POLL,
            wake_wait_seconds=WAIT,
            wake_stream_wait_seconds=STREAM_WAIT,
        ),
        idle_seconds=600.0,  # only the tests scale it to zero
        load_seconds=QUICK_LOAD,
    )
    yield gw
    gw.stop()


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def components(gw: LocalGateway) -> Components:
    assert gw.stack.components is not None
    return gw.stack.components


def status(gw: LocalGateway) -> tuple[str, int, int]:
    component = components(gw).get(ECHO_COMPONENT)
    assert component is not None
    return component.status, component.desired, component.current


@pytest.fixture
def at_zero(s2z: LocalGateway) -> Iterator[LocalGateway]:
    """echo's component at zero copies (after any wake a previous test left loading);
    the quick load time back afterwards."""
    wait_until(lambda: status(s2z)[0] == "InService")
    s2z.stack.scale_to_zero(ECHO_COMPONENT)
    assert status(s2z) == ("InService", 0, 0)
    yield s2z
    components(s2z).simulated_load_seconds = QUICK_LOAD


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, at_zero: LocalGateway) -> dict[str, int]:
    """Counts of the control-plane calls the proxy makes (the local control plane's
    own handlers, wrapped)."""
    counts = {"update": 0, "describe": 0}
    comps = components(at_zero)
    update, describe = comps.update, emd.local.control_plane._describe

    def counting_update(name: str, copies: int) -> Any:
        counts["update"] += 1
        return update(name, copies)

    def counting_describe(component: Any) -> Any:
        counts["describe"] += 1
        return describe(component)

    monkeypatch.setattr(comps, "update", counting_update)
    monkeypatch.setattr(emd.local.control_plane, "_describe", counting_describe)
    return counts


def chat(stream: bool) -> dict[str, Any]:
    return {"model": ECHO, "messages": [{"role": "user", "content": MESSAGE}], "stream": stream}


def headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def test_streamed_chat_holds_with_keepalives_then_answers(at_zero: LocalGateway) -> None:
    components(at_zero).simulated_load_seconds = 1.0
    lines: list[str] = []
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST", f"{at_zero.base_url}/chat/completions", json=chat(True), headers=headers()
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    comments = [
        line for line in lines[: lines.index(next(x for x in lines if x.startswith("data:")))]
    ]
    assert comments and all(c == f": waking {ECHO}" for c in comments)
    assert len(comments) >= 2  # the first at once, then every keep-alive interval
    events = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    assert text.strip() == MESSAGE
    assert lines[-1] == "data: [DONE]"
    assert status(at_zero) == ("InService", 1, 1)


def test_openai_and_anthropic_sdks_read_a_held_stream(at_zero: LocalGateway) -> None:
    client = openai.OpenAI(base_url=at_zero.base_url, api_key=KEY, max_retries=0)
    stream = client.chat.completions.create(
        model=ECHO, messages=[{"role": "user", "content": MESSAGE}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text.strip() == MESSAGE

    wait_until(lambda: status(at_zero)[0] == "InService")
    at_zero.stack.scale_to_zero(ECHO_COMPONENT)
    messages = anthropic.Anthropic(
        base_url=at_zero.base_url.removesuffix("/v1"), api_key=KEY, max_retries=0
    )
    with messages.messages.stream(
        model=ECHO, max_tokens=50, messages=[{"role": "user", "content": MESSAGE}]
    ) as held:
        assert held.get_final_text().strip() == MESSAGE


def test_non_stream_request_waits_for_a_quick_wake(at_zero: LocalGateway) -> None:
    client = openai.OpenAI(base_url=at_zero.base_url, api_key=KEY, max_retries=0)
    answer = client.chat.completions.create(
        model=ECHO, messages=[{"role": "user", "content": MESSAGE}]
    )
    assert (answer.choices[0].message.content or "").strip() == MESSAGE


def test_non_stream_request_past_its_wait_gets_503_with_retry_after(
    at_zero: LocalGateway,
) -> None:
    components(at_zero).simulated_load_seconds = SLOW_LOAD
    started = time.monotonic()
    response = httpx.post(
        f"{at_zero.base_url}/chat/completions", json=chat(False), headers=headers(), timeout=30
    )
    waited = time.monotonic() - started
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["type"] == "service_unavailable"
    assert error["code"] == "model_scaling_from_zero"
    assert error["param"] is None
    assert int(response.headers["Retry-After"]) >= 1
    assert waited >= WAIT  # it did wait before answering
    assert status(at_zero)[:2] == ("Updating", 1)  # the wake goes on


def test_responses_stream_and_legacy_completion_wake_it_too(at_zero: LocalGateway) -> None:
    client = openai.OpenAI(base_url=at_zero.base_url, api_key=KEY, max_retries=0)
    events = list(client.responses.create(model=ECHO, input=MESSAGE, stream=True))
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text.strip() == MESSAGE

    wait_until(lambda: status(at_zero)[0] == "InService")
    at_zero.stack.scale_to_zero(ECHO_COMPONENT)
    completion = client.completions.create(model=ECHO, prompt=MESSAGE, max_tokens=20)
    assert MESSAGE.split(maxsplit=1)[0] in completion.choices[0].text


def test_requests_during_a_wake_join_it(at_zero: LocalGateway, counted: dict[str, int]) -> None:
    components(at_zero).simulated_load_seconds = 1.0
    results: list[int] = []

    def one() -> None:
        response = httpx.post(
            f"{at_zero.base_url}/chat/completions", json=chat(False), headers=headers(), timeout=30
        )
        results.append(response.status_code)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
        time.sleep(0.1)  # staggered: the later ones arrive while the wake is under way
    for thread in threads:
        thread.join()
    assert results == [200, 200, 200]
    assert counted["update"] == 1


def test_stream_past_its_wait_ends_with_the_error_event(at_zero: LocalGateway) -> None:
    components(at_zero).simulated_load_seconds = SLOW_LOAD
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST", f"{at_zero.base_url}/chat/completions", json=chat(True), headers=headers()
        ) as response,
    ):
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert lines[0] == f": waking {ECHO}"
    data = [x for x in lines if x.startswith("data:")]
    assert data[-1] == "data: [DONE]"
    assert len(data) == 2
    error = json.loads(data[0][6:])["error"]
    assert error["code"] == "model_scaling_from_zero"
    assert error["type"] == "service_unavailable"


def test_anthropic_stream_past_its_wait_ends_with_its_error_event(at_zero: LocalGateway) -> None:
    components(at_zero).simulated_load_seconds = SLOW_LOAD
    body = {
        "model": ECHO,
        "max_tokens": 20,
        "stream": True,
        "messages": [{"role": "user", "content": MESSAGE}],
    }
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST", f"{at_zero.base_url}/messages", json=body, headers={"x-api-key": KEY}
        ) as response,
    ):
        assert response.status_code == 200
        text = response.read().decode()
    assert text.startswith(f": waking {ECHO}\n\n")
    assert "event: error\n" in text
    error = json.loads(text.split("event: error\ndata: ")[1].split("\n")[0])
    assert error == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": error["error"]["message"]},
    }


def test_a_disconnect_during_the_hold_stops_polling(
    at_zero: LocalGateway, counted: dict[str, int]
) -> None:
    components(at_zero).simulated_load_seconds = SLOW_LOAD
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST", f"{at_zero.base_url}/chat/completions", json=chat(True), headers=headers()
        ) as response,
    ):
        lines = response.iter_lines()
        assert next(lines) == f": waking {ECHO}"
        wait_until(lambda: counted["describe"] >= 3)  # the poll is running
    # The client hung up: the poll stops within a poll interval or so.
    time.sleep(5 * POLL)
    stopped_at = counted["describe"]
    time.sleep(10 * POLL)
    assert counted["describe"] == stopped_at
    assert counted["update"] == 1
    assert status(at_zero)[:2] == ("Updating", 1)  # the scale-out asked for goes on
