"""wake.py's rules with a scripted control plane (a stand-in for the two SageMaker calls;
the real botocore path against the local control plane is in
tests/integration/test_scale_to_zero.py): only-from-zero updates, single flight, joins
of a wake under way, control-plane failures as 503s, deadlines, Retry-After, metrics;
and the no-capacity error's mapping and the InferenceComponentName header."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from emd_proxy import wake
from emd_proxy.errors import ModelNotFoundError, ModelScalingFromZeroError
from emd_proxy.registry import RegistryEntry
from emd_proxy.sagemaker_client import INVOKE, SageMakerRuntime, _params
from emd_proxy.sagemaker_errors import map_upstream_error
from emd_proxy.settings import Settings
from emd_proxy.wake import (
    DEFAULT_WAKE_SECONDS,
    ComponentState,
    ControlPlane,
    Waker,
    lambda_seconds_left,
)

NO_CAPACITY = (
    "Inference Component has no capacity to process this request. ApplicationAutoScaling "
    "may be in-progress (if configured) or try to increase the capacity by invoking "
    "UpdateInferenceComponentRuntimeConfig API."
)
COMPONENT = "emd-qwen3-8b-dev"


def entry(wake_seconds: float | None = None, component: str | None = COMPONENT) -> RegistryEntry:
    return RegistryEntry(
        id="Qwen3-8B/dev",
        model="Qwen3-8B",
        tag="dev",
        endpoint="emd-qwen3-8b-dev",
        engine="vllm",
        families=["chat"],
        inference_component=component,
        wake_seconds=wake_seconds,
    )


def client_error(
    code: str, operation: str = "UpdateInferenceComponentRuntimeConfig"
) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "account 123456789012"}}, operation)


class Control:
    """A component at zero copies that is up `load_polls` describes after an update."""

    def __init__(self, desired: int = 0, status: str = "InService", load_polls: int = 2) -> None:
        self.desired, self.current, self.status = desired, 0, status
        self.load_polls = load_polls
        self.updates = 0
        self.describes = 0
        self.describe_error: ClientError | None = None
        self.update_error: ClientError | None = None
        self.modified = 1000.0

    async def describe(self, component: str) -> ComponentState:
        assert component == COMPONENT
        await asyncio.sleep(0)
        self.describes += 1
        if self.describe_error is not None:
            raise self.describe_error
        if self.desired and self.status == "Updating":
            self.load_polls -= 1
            if self.load_polls < 0:
                self.current, self.status = 1, "InService"
        return ComponentState(self.status, self.desired, self.current, self.modified)

    async def scale_out(self, component: str) -> None:
        await asyncio.sleep(0)
        self.updates += 1
        if self.update_error is not None:
            raise self.update_error
        self.desired, self.status = 1, "Updating"


class Upstream:
    """The call being held: refused (no capacity) until the control plane has a copy
    up, then `refusals_after_ready` more times (routing lag)."""

    def __init__(self, control: Control, refusals_after_ready: int = 0) -> None:
        self.control = control
        self.lag = refusals_after_ready
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.control.current < 1:
            raise ModelScalingFromZeroError("no capacity", retry_after=60)
        if self.lag:
            self.lag -= 1
            raise ModelScalingFromZeroError("no capacity", retry_after=60)
        return "answer"


def sync(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Runs an async test in a fresh event loop (no pytest plugin here)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


async def until(check: Callable[[], bool]) -> None:
    for _ in range(10_000):
        if check():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not met in time")


def waker(control: Control, poll: float = 0.001) -> Waker:
    return Waker(Settings(wake_poll_seconds=poll), control)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMD_USAGE_METRICS", "1")


def metric_lines(out: str) -> list[tuple[str, float, str]]:
    rows = []
    for line in out.splitlines():
        doc = json.loads(line)
        name = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"]
        rows.append((name, doc[name], doc["model"]))
    return rows


# --- the error and the header ---------------------------------------------------------


def test_no_capacity_is_a_distinct_503_and_not_found_stays_404() -> None:
    error = map_upstream_error(client_error_with(NO_CAPACITY), COMPONENT)
    assert isinstance(error, ModelScalingFromZeroError)
    assert (error.status, error.type, error.code) == (
        503,
        "service_unavailable",
        "model_scaling_from_zero",
    )
    assert int(error.headers()["Retry-After"]) >= 1
    assert "123456789012" not in error.message
    upper = map_upstream_error(client_error_with(NO_CAPACITY.upper()), COMPONENT)
    assert isinstance(upper, ModelScalingFromZeroError)
    missing = map_upstream_error(
        client_error_with("Endpoint emd-x of account 123456789012 not found."), COMPONENT
    )
    assert isinstance(missing, ModelNotFoundError)


def client_error_with(message: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "ValidationError", "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "InvokeEndpoint",
    )


def test_every_invoke_of_a_component_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    runtime = SageMakerRuntime(Settings())
    operation = runtime._operations[INVOKE]
    credentials = ReadOnlyCredentials("AKIDEXAMPLE", "secret", None)
    named = _params("ep", b"{}", "application/json", None, None, inference_component=COMPONENT)
    headers = runtime._prepare(operation, named, credentials).headers
    assert headers["X-Amzn-SageMaker-Inference-Component"] == COMPONENT
    plain = _params("ep", b"{}", "application/json", None, None, inference_component=None)
    assert "InferenceComponentName" not in plain
    assert not any(
        "inference-component" in h.lower()
        for h in runtime._prepare(operation, plain, credentials).headers
    )


# --- waking -----------------------------------------------------------------------------


@sync
async def test_a_wake_from_zero_updates_once_and_answers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    control = Control()
    w = waker(control)
    call = Upstream(control, refusals_after_ready=2)
    assert await w.hold(entry(), call, 5.0) == "answer"
    assert control.updates == 1
    assert call.calls == 3  # routing lag: refused twice after InService, then through
    rows = metric_lines(capsys.readouterr().out)
    assert [(name, model) for name, _, model in rows] == [
        ("WakeUps", "Qwen3-8B/dev"),
        ("WakeSeconds", "Qwen3-8B/dev"),
    ]
    assert rows[0][1] == [1.0]


@sync
async def test_concurrent_requests_share_one_wake() -> None:
    control = Control(load_polls=5)
    w = waker(control)
    calls = [Upstream(control) for _ in range(6)]
    answers = await asyncio.gather(*(w.hold(entry(), call, 5.0) for call in calls))
    assert answers == ["answer"] * 6
    assert control.updates == 1
    assert control.describes <= 1 + 6 + 1  # one start, one shared poll: not one per request


@sync
async def test_a_desired_count_above_zero_is_never_updated(
    capsys: pytest.CaptureFixture[str],
) -> None:
    control = Control(desired=2, status="Updating")
    assert await waker(control).hold(entry(), Upstream(control), 5.0) == "answer"
    assert control.updates == 0
    assert capsys.readouterr().out == ""  # someone else's wake: no WakeUps here


@sync
async def test_an_update_refused_because_one_is_under_way_joins_it() -> None:
    control = Control()
    control.update_error = client_error("ValidationException")

    async def other_lambda_updates(component: str) -> None:
        control.desired, control.status = 1, "Updating"  # it won the race
        raise client_error("ValidationException")

    control.scale_out = other_lambda_updates  # type: ignore[method-assign]
    assert await waker(control).hold(entry(), Upstream(control), 5.0) == "answer"


@pytest.mark.parametrize(
    ("where", "code"),
    [("describe", "AccessDeniedException"), ("update", "ThrottlingException")],
)
@sync
async def test_control_plane_failure_is_a_503_with_retry_after(
    where: str, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    control = Control()
    setattr(control, f"{where}_error", client_error(code))
    with pytest.raises(ModelScalingFromZeroError) as raised:
        await waker(control).hold(entry(wake_seconds=120), Upstream(control), 5.0)
    assert raised.value.status == 503
    assert 1 <= raised.value.retry_after <= 120  # type: ignore[operator]
    assert "123456789012" not in raised.value.message


@sync
async def test_after_a_failed_start_the_next_request_starts_again() -> None:
    control = Control()
    control.update_error = client_error("ThrottlingException")
    w = waker(control)
    with pytest.raises(ModelScalingFromZeroError):
        await w.hold(entry(), Upstream(control), 5.0)
    control.update_error = None
    assert await w.hold(entry(), Upstream(control), 5.0) == "answer"
    assert control.updates == 2


@sync
async def test_a_control_plane_that_does_not_answer_is_a_503_after_a_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wake, "START_GRACE_SECONDS", 0.05)
    control = Control()

    async def silent(component: str) -> ComponentState:
        await asyncio.Event().wait()
        raise AssertionError

    control.describe = silent  # type: ignore[method-assign]
    with pytest.raises(ModelScalingFromZeroError):
        await waker(control).hold(entry(), Upstream(control), 0.0)


@sync
async def test_a_wait_of_zero_answers_at_once_after_asking_for_a_copy() -> None:
    control = Control(load_polls=1000)
    call = Upstream(control)
    with pytest.raises(ModelScalingFromZeroError) as raised:
        await waker(control).hold(entry(wake_seconds=90), call, 0.0)
    assert control.updates == 1
    assert call.calls == 0
    assert 85 <= raised.value.retry_after <= 90  # type: ignore[operator]


@sync
async def test_past_the_deadline_it_is_a_503_and_a_later_request_does_not_update_again() -> None:
    control = Control(load_polls=10_000)
    w = waker(control, poll=0.001)
    with pytest.raises(ModelScalingFromZeroError):
        await w.hold(entry(), Upstream(control), 0.05)
    control.load_polls = 0
    assert await w.hold(entry(), Upstream(control), 5.0) == "answer"
    assert control.updates == 1


@sync
async def test_a_cancelled_waiter_stops_the_poll() -> None:
    control = Control(load_polls=10_000)
    w = waker(control, poll=0.001)
    task = asyncio.ensure_future(w.hold(entry(), Upstream(control), 60.0))
    await until(lambda: control.describes >= 5)
    task.cancel()
    await asyncio.wait((task,))
    seen = control.describes
    await asyncio.sleep(0.05)
    assert control.describes == seen


@sync
async def test_failed_component_ends_the_wait() -> None:
    control = Control(status="Failed", desired=1)
    with pytest.raises(ModelScalingFromZeroError):
        await waker(control).hold(entry(), Upstream(control), 5.0)


# --- Retry-After ----------------------------------------------------------------------


@sync
async def test_retry_after_uses_the_wake_measured_here() -> None:
    now = [0.0]
    control = Control(load_polls=10_000)
    w = Waker(Settings(wake_poll_seconds=0.001), control, clock=lambda: now[0])  # type: ignore[arg-type]
    # A first wake measured at 42 s.
    call = Upstream(control)
    task = asyncio.ensure_future(w.hold(entry(wake_seconds=300), call, 1000.0))
    await until(lambda: control.updates == 1)
    now[0] = 42.0
    control.load_polls = 0
    assert await task == "answer"
    # To zero again: a request that cannot wait is told the measured time, less the
    # time since this wake started.
    control.desired, control.current, control.load_polls = 0, 0, 10_000
    now[0] = 100.0
    with pytest.raises(ModelScalingFromZeroError) as raised:
        await w.hold(entry(wake_seconds=300), Upstream(control), 0.0)
    assert raised.value.retry_after == 42


@sync
async def test_retry_after_of_someone_elses_wake_counts_from_its_last_change() -> None:
    control = Control(desired=1, status="Updating", load_polls=10_000)
    control.modified = 5000.0
    w = Waker(
        Settings(wake_poll_seconds=0.001),
        control,  # type: ignore[arg-type]
        wall=lambda: 5100.0,
    )
    with pytest.raises(ModelScalingFromZeroError) as raised:
        await w.hold(entry(wake_seconds=300), Upstream(control), 0.0)
    assert raised.value.retry_after == 200
    fresh = Waker(Settings(), control, wall=lambda: 5100.0)  # type: ignore[arg-type]
    with pytest.raises(ModelScalingFromZeroError) as default:
        await fresh.hold(entry(), Upstream(control), 0.0)
    assert default.value.retry_after == DEFAULT_WAKE_SECONDS - 100


def test_lambda_deadline_from_the_web_adapters_header() -> None:
    class Request:
        def __init__(self, value: str | None) -> None:
            self.headers = {"x-amzn-lambda-context": value} if value else {}

    context = json.dumps({"request_id": "r", "deadline": 1_000_000_000_000 + 30_000})
    left = lambda_seconds_left(Request(context), 1_000_000_000.0)  # type: ignore[arg-type]
    assert 26 <= left <= 27  # 30 s less the margin to answer
    assert lambda_seconds_left(Request(None), 0.0) == float("inf")  # type: ignore[arg-type]
    assert lambda_seconds_left(Request("garbage"), 0.0) == float("inf")  # type: ignore[arg-type]
    assert lambda_seconds_left(None, 0.0) == float("inf")


# --- the botocore client ----------------------------------------------------------------


@sync
async def test_control_plane_calls_through_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real `sagemaker` client's request and answer shapes (botocore's Stubber:
    moto does not implement inference components)."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    async def run(fn: Any) -> Any:
        return fn()

    control = ControlPlane(run, environ={})
    client = control._sagemaker()
    modified = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with Stubber(client) as stub:
        stub.add_response(
            "describe_inference_component",
            {
                "InferenceComponentName": COMPONENT,
                "InferenceComponentArn": "arn:aws:sagemaker:us-east-1:1:inference-component/x",
                "EndpointName": "emd-qwen3-8b-dev",
                "EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/x",
                "CreationTime": modified,
                "LastModifiedTime": modified,
                "InferenceComponentStatus": "InService",
                "RuntimeConfig": {"DesiredCopyCount": 0, "CurrentCopyCount": 0},
            },
            {"InferenceComponentName": COMPONENT},
        )
        stub.add_response(
            "update_inference_component_runtime_config",
            {"InferenceComponentArn": "arn:aws:sagemaker:us-east-1:1:inference-component/x"},
            {"InferenceComponentName": COMPONENT, "DesiredRuntimeConfig": {"CopyCount": 1}},
        )
        state = await control.describe(COMPONENT)
        await control.scale_out(COMPONENT)
        stub.assert_no_pending_responses()
    assert state == ComponentState("InService", 0, 0, modified.timestamp())
    assert not state.ready and not state.waking
