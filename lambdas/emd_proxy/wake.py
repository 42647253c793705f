"""Scale to zero: waking a model's inference component, and holding its requests.

While an inference component is at zero copies SageMaker refuses every invoke with a
ValidationError, "Inference Component has no capacity to process this request. ..."
(sagemaker_errors.py turns it into `ModelScalingFromZeroError`). Its own alarm-driven
scale-out takes minutes to notice, so the first refusal a process sees starts the
scale-out itself, and the request waits instead of failing:

- start (once per burst of requests, shared by all of them): DescribeInferenceComponent,
  then UpdateInferenceComponentRuntimeConfig to one copy only when the desired count is
  0 (never lowering a count autoscaling raised). An update refused because another
  Lambda's update is under way, or a desired count already at 1 or more, is a wake
  under way: joined, not repeated. A control-plane failure (access denied, throttling)
  is logged and the request gets the 503, never a stack trace.
- hold: one shared poll of DescribeInferenceComponent every `wake_poll_seconds` until a
  copy is InService, then the call again (routing can lag behind the status: a call
  that still finds no capacity waits a poll and tries again), all within the request's
  deadline: `wake_wait_seconds` for a non-stream request (then 503
  model_scaling_from_zero with a Retry-After), `wake_stream_wait_seconds` for an SSE
  stream (which meanwhile sends keep-alive comments: streaming.held_sse_body), never
  past the Lambda's own deadline. When the last waiting request leaves (its client
  hung up), the polling stops; the scale-out already asked for goes on.

Only entries with `inference_component` get here, and only after a refusal: the path
of every other request is unchanged. The botocore `sagemaker` client (its service model
is large) is created on the first wake, in a worker thread, as are its calls.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from starlette.requests import Request

from .errors import ModelScalingFromZeroError
from .log import logger
from .metrics import record_wake_seconds, record_wake_up
from .registry import RegistryEntry
from .settings import Settings

T = TypeVar("T")
Run = Callable[..., Awaitable[Any]]  # WorkerPool.run: a blocking call off the loop

# Retry-After's basis when neither this process nor the catalog knows how long a wake
# of this model takes (SageMaker provisions an instance and loads the model: minutes).
DEFAULT_WAKE_SECONDS = 240.0
# A wake not seen to end within this long is forgotten (its duration would be wrong).
EPISODE_MAX_SECONDS = 3600.0
# How long a request that cannot wait still waits for the scale-out request to go out.
START_GRACE_SECONDS = 5.0
# Left of the Lambda's deadline for answering (the 503, or a stream's error event).
LAMBDA_MARGIN_SECONDS = 3.0
# Refusals of an update that may mean "another update is under way" (decided by a
# second DescribeInferenceComponent, not by the message).
_MAYBE_UNDER_WAY = frozenset(
    {"ValidationException", "ValidationError", "ResourceInUse", "ConflictException"}
)


@dataclass(frozen=True)
class ComponentState:
    """What DescribeInferenceComponent says of a component's capacity."""

    status: str
    desired: int
    current: int
    last_modified: float | None  # epoch seconds

    @classmethod
    def of(cls, answer: dict[str, Any]) -> ComponentState:
        runtime = answer.get("RuntimeConfig") or {}
        modified = answer.get("LastModifiedTime")
        return cls(
            status=str(answer.get("InferenceComponentStatus") or ""),
            desired=int(runtime.get("DesiredCopyCount") or 0),
            current=int(runtime.get("CurrentCopyCount") or 0),
            last_modified=modified.timestamp() if isinstance(modified, datetime) else None,
        )

    @property
    def ready(self) -> bool:
        return self.status == "InService" and self.current >= 1

    @property
    def waking(self) -> bool:
        return self.desired >= 1 or self.status in ("Updating", "Creating")


class ControlPlane:
    """The two SageMaker control-plane calls a wake needs, through botocore's
    `sagemaker` client (endpoint from `AWS_ENDPOINT_URL_SAGEMAKER` as boto3 reads it),
    created on first use; every blocking call runs in the worker pool. The endpoint
    variable is read when the app is made, as for the runtime client (a process that
    points the variables elsewhere later, such as a test run, does not move it)."""

    def __init__(
        self,
        run: Run,
        session_factory: Callable[[], botocore.session.Session] | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self._run = run
        self._session_factory = session_factory or botocore.session.get_session
        self._endpoint_url = environ.get("AWS_ENDPOINT_URL_SAGEMAKER") or None
        self._client: Any = None
        self._lock = threading.Lock()

    def _sagemaker(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._session_factory().create_client(
                    "sagemaker",
                    endpoint_url=self._endpoint_url,
                    config=Config(
                        retries={"mode": "standard", "max_attempts": 3},
                        connect_timeout=5,
                        read_timeout=20,
                    ),
                )
            return self._client

    async def describe(self, component: str) -> ComponentState:
        answer = await self._run(
            lambda: self._sagemaker().describe_inference_component(InferenceComponentName=component)
        )
        return ComponentState.of(answer)

    async def scale_out(self, component: str) -> None:
        """One copy (only ever called on a component whose desired count is 0)."""
        await self._run(
            lambda: self._sagemaker().update_inference_component_runtime_config(
                InferenceComponentName=component, DesiredRuntimeConfig={"CopyCount": 1}
            )
        )


@dataclass(eq=False)
class _Wake:
    """One component's wake as this process sees it: from the first refusal to the
    first call that goes through."""

    entry: RegistryEntry
    first_refusal: float  # monotonic
    started_here: bool = False  # this process sent the update (WakeUps, WakeSeconds)
    since: float | None = None  # epoch: the update, ours or the component's last change
    start: asyncio.Future[None] | None = None
    poll: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    failure: ModelScalingFromZeroError | None = None
    waiters: int = 0


class Waker:
    """The wakes of one process, one per inference component."""

    def __init__(
        self,
        settings: Settings,
        control: ControlPlane,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._poll_seconds = settings.wake_poll_seconds
        self._control = control
        self._clock = clock
        self._wall = wall
        self._wakes: dict[str, _Wake] = {}
        self._measured: dict[str, float] = {}  # model id -> its last wake here, seconds

    # --- the two entry points ---------------------------------------------------------

    async def hold(
        self,
        entry: RegistryEntry,
        attempt: Callable[[], Awaitable[T]],
        wait_seconds: float,
        request: Request | None = None,
    ) -> T:
        """`attempt`'s result once `entry`'s component has woken; `attempt` has just
        been refused for no capacity. Raises ModelScalingFromZeroError (with its
        Retry-After) past the deadline, or when the wake cannot be started."""
        component = entry.inference_component
        if component is None:  # nothing to wake: SageMaker's own scaling will answer
            raise ModelScalingFromZeroError(
                f"The model {entry.id} is scaling up; try again shortly.",
                retry_after=math.ceil(self._poll_seconds),
            )
        now = self._clock()
        lambda_left = lambda_seconds_left(request, self._wall())
        deadline = now + max(0.0, min(wait_seconds, lambda_left))
        wake = self._join(entry, now)
        wake.waiters += 1
        try:
            # The scale-out request goes out even for a request that cannot wait (a
            # wait of 0), within a grace of its own; it goes on if this one leaves.
            grace = max(0.0, min(max(deadline - now, START_GRACE_SECONDS), lambda_left))
            try:
                async with asyncio.timeout(grace):
                    await asyncio.shield(wake.start)  # type: ignore[arg-type]
            except TimeoutError:
                raise self._refusal(wake) from None
            while True:
                left = deadline - self._clock()
                if left <= 0 or not await self._until_ready(wake, left):
                    raise self._refusal(wake)
                try:
                    result = await attempt()
                except ModelScalingFromZeroError:
                    # InService, yet not routed to: wait a poll and try again.
                    await asyncio.sleep(min(self._poll_seconds, max(0.0, deadline - self._clock())))
                    continue
                self.succeeded(entry)
                return result
        finally:
            wake.waiters -= 1
            if wake.waiters == 0 and wake.poll is not None:
                wake.poll.cancel()  # nobody waits: stop asking
                wake.poll = None

    def succeeded(self, entry: RegistryEntry) -> None:
        """A call to `entry` went through: the end of its wake, if one is open."""
        wake = self._wakes.pop(entry.inference_component or "", None)
        if wake is None:
            return
        if wake.poll is not None:
            wake.poll.cancel()
        seconds = self._clock() - wake.first_refusal
        if wake.started_here:
            self._measured[entry.id] = seconds
            record_wake_seconds(entry.id, seconds)
        logger.info(
            "wake done",
            extra={
                "inference_component": entry.inference_component,
                "model": entry.id,
                "wake_seconds": round(seconds, 3),
                "started_here": wake.started_here,
            },
        )

    # --- the shared parts of a wake --------------------------------------------------

    def _join(self, entry: RegistryEntry, now: float) -> _Wake:
        component = entry.inference_component or ""
        wake = self._wakes.get(component)
        if wake is None or now - wake.first_refusal > EPISODE_MAX_SECONDS or _failed(wake):
            wake = self._wakes[component] = _Wake(entry, now)
        if wake.waiters == 0 and (wake.start is None or wake.start.done()):
            # A new burst: (re)start, which only asks for a copy if nobody has.
            wake.ready = asyncio.Event()
            wake.failure = None
            wake.start = asyncio.ensure_future(self._start(wake))
            wake.start.add_done_callback(_retrieved)
        return wake

    async def _start(self, wake: _Wake) -> None:
        entry = wake.entry
        component = entry.inference_component or ""
        log = {"inference_component": component, "model": entry.id}
        try:
            state = await self._control.describe(component)
            if state.desired == 0:
                if await self._scale_out(wake):
                    return
                state = await self._control.describe(component)
            if wake.since is None:
                wake.since = state.last_modified
            logger.info("wake under way", extra={**log, "status": state.status})
        except (ClientError, BotoCoreError) as exc:
            logger.error("cannot wake the inference component", extra={**log, **_aws(exc)})
            raise self._refusal(wake) from None

    async def _scale_out(self, wake: _Wake) -> bool:
        """Asks for one copy; True if this process started the wake, False if an
        update under way refused it (ClientError otherwise)."""
        entry = wake.entry
        component = entry.inference_component or ""
        try:
            await self._control.scale_out(component)
        except ClientError as exc:
            if _aws(exc)["aws_error_code"] not in _MAYBE_UNDER_WAY:
                raise
            if not (await self._control.describe(component)).waking:
                raise
            return False
        wake.started_here = True
        wake.since = self._wall()
        record_wake_up(entry.id)
        logger.info("wake started", extra={"inference_component": component, "model": entry.id})
        return True

    async def _until_ready(self, wake: _Wake, left: float) -> bool:
        """Whether a copy is up (or the status cannot be read: the calls will tell)
        within `left` seconds; one poll serves every waiting request."""
        if not wake.ready.is_set() and (wake.poll is None or wake.poll.done()):
            wake.poll = asyncio.ensure_future(self._poll(wake))
        try:
            async with asyncio.timeout(left):
                await wake.ready.wait()
        except TimeoutError:
            return False
        if wake.failure is not None:
            raise wake.failure
        return True

    async def _poll(self, wake: _Wake) -> None:
        component = wake.entry.inference_component or ""
        while True:
            try:
                state = await self._control.describe(component)
                if state.status == "InService" and state.desired == 0:
                    # Scaled in again under us (or our update lost a race): ask again.
                    await self._scale_out(wake)
            except (ClientError, BotoCoreError) as exc:
                logger.warning(
                    "cannot read the inference component's status; trying the calls",
                    extra={"inference_component": component, **_aws(exc)},
                )
                wake.ready.set()
                return
            if state.ready:
                wake.ready.set()
                return
            if state.status == "Failed":
                logger.error("inference component failed", extra={"inference_component": component})
                wake.failure = self._refusal(wake)
                wake.ready.set()
                return
            await asyncio.sleep(self._poll_seconds)

    # --- what a request that cannot wait is told ---------------------------------------

    def _refusal(self, wake: _Wake) -> ModelScalingFromZeroError:
        seconds = self.retry_after(wake)
        return ModelScalingFromZeroError(
            f"The model {wake.entry.id} is scaling up from zero; try again in about "
            f"{seconds} seconds.",
            retry_after=seconds,
        )

    def retry_after(self, wake: _Wake) -> int:
        """Seconds until the wake should be done: this model's last wake measured here
        (else the catalog's estimate, else a default) less the time since it started
        (ours, or the component's last change when someone else started it)."""
        entry = wake.entry
        total = self._measured.get(entry.id) or entry.wake_seconds or DEFAULT_WAKE_SECONDS
        if wake.started_here or wake.since is None:
            elapsed = self._clock() - wake.first_refusal
        else:
            elapsed = self._wall() - wake.since
        left = total - elapsed
        return max(1, math.ceil(left if left > 0 else self._poll_seconds))


def lambda_seconds_left(request: Request | None, now: float) -> float:
    """Seconds before the Lambda's deadline, less a margin to answer (infinite when
    not in a Lambda). The Lambda Web Adapter forwards the invocation context as the
    `x-amzn-lambda-context` header; its `deadline` is in epoch milliseconds."""
    raw = request.headers.get("x-amzn-lambda-context") if request is not None else None
    if not raw:
        return math.inf
    try:
        deadline = json.loads(raw).get("deadline")
        return float(deadline) / 1000 - now - LAMBDA_MARGIN_SECONDS
    except (ValueError, TypeError, AttributeError):
        return math.inf


def _aws(exc: Exception) -> dict[str, Any]:
    """What is logged of a control-plane failure (its code, never its message, which
    names the account)."""
    if isinstance(exc, ClientError):
        return {"aws_error_code": exc.response.get("Error", {}).get("Code", "")}
    return {"aws_error_code": type(exc).__name__}


def _failed(wake: _Wake) -> bool:
    """A wake whose start failed and nobody waits on any more: the next refusal
    begins a new one (and its duration counts from then)."""
    start = wake.start
    return (
        wake.waiters == 0
        and start is not None
        and start.done()
        and not start.cancelled()
        and start.exception() is not None
    )


def _retrieved(future: asyncio.Future[None]) -> None:
    # A start whose waiters all left: its failure was logged, nobody else reads it.
    if not future.cancelled():
        future.exception()
