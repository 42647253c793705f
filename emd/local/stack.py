"""The whole local backend: containers + SageMaker-runtime emulator, started together.

stack = LocalStack(["echo/local"]).start()
stack.emulator_url, stack.registry
stack.fault("emd-echo-local", "throttle", times=2)
stack.stop()

With `scale_to_zero_after=SECONDS` each model is an inference component (named as its
endpoint) that unloads after that long idle, and `stack.control_url` is the local
SageMaker control plane that wakes it (components.py, control_plane.py):

stack = LocalStack(["echo/local"], scale_to_zero_after=2.0, simulated_load_seconds=0.1)
stack.scale_to_zero("emd-echo-local")  # at once, instead of waiting for the idle timer
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from emd_proxy.log import logger
from emd_proxy.registry import Registry, RegistryEntry

from .components import Components
from .control_plane import ControlPlane
from .emulator import Emulator
from .faults import Fault
from .models import LOCAL_MODELS, LocalModel
from .servers import BackgroundServers


@dataclass(frozen=True)
class LoadedModel:
    model: LocalModel
    container_url: str
    load_seconds: float


class LocalStack:
    def __init__(
        self,
        model_ids: Iterable[str] | None = None,
        invoke_timeout: float = 60.0,
        *,
        scale_to_zero_after: float | None = None,
        simulated_load_seconds: float = 2.0,
    ):
        ids = list(model_ids) if model_ids is not None else list(LOCAL_MODELS)
        unknown = [i for i in ids if i not in LOCAL_MODELS]
        if unknown:
            raise ValueError(f"unknown local models {unknown}; choose from {list(LOCAL_MODELS)}")
        self.models = [LOCAL_MODELS[i] for i in ids]
        self.invoke_timeout = invoke_timeout
        self.loaded: list[LoadedModel] = []
        self.emulator: Emulator | None = None
        self.emulator_url = ""
        self.registry = Registry([])
        self._servers = BackgroundServers()
        # Model id -> the container object serving it, for callers (tests) that watch a
        # container's own state, such as the generations it is running.
        # A model's entry is dropped while it is scaled to zero.
        self.containers: dict[str, Any] = {}
        self.scale_to_zero_after = scale_to_zero_after
        self.components: Components | None = None
        self.control_url = ""
        if scale_to_zero_after is not None:
            if scale_to_zero_after <= 0:
                raise ValueError("scale_to_zero_after must be more than 0 seconds")
            self.components = Components(
                scale_to_zero_after,
                simulated_load_seconds=simulated_load_seconds,
                on_change=self._container_changed,
            )

    def start(self) -> LocalStack:
        created = int(time.time())
        endpoints: dict[str, str] = {}
        for model in self.models:
            container, seconds = model.build()
            self.containers[model.id] = container
            if self.components is not None:
                url = self._servers.add(self.components.add(model, container, seconds))
            else:
                url = self._servers.add(container.app())
            self.loaded.append(LoadedModel(model, url, seconds))
            endpoints[model.endpoint_name] = url
            logger.info(
                "model loaded", extra={"model": model.id, "load_seconds": round(seconds, 3)}
            )
        self.emulator = Emulator(
            endpoints, invoke_timeout=self.invoke_timeout, components=self.components
        )
        self.emulator_url = self._servers.add(self.emulator.app(), lifespan=True)
        if self.components is not None:
            self.control_url = self._servers.add(ControlPlane(self.components).app())
        self._servers.start()
        self._wait_for_ping()
        self.registry = Registry(registry_entries(self.loaded, created, self.wake_estimates()))
        if self.components is not None:
            self.components.start()
        return self

    def wake_estimates(self) -> dict[str, float] | None:
        """Model id -> seconds a wake from zero should take (the load measured at start,
        or the simulated one); None without scale to zero."""
        if self.components is None:
            return None
        return {
            m.model.id: self.components.wake_estimate(m.model.endpoint_name) for m in self.loaded
        }

    def scale_to_zero(self, component: str) -> None:
        """Unloads the component's model now (no call may be in flight)."""
        assert self.components is not None, "scale to zero is off"
        if not self.components.unload(component):
            raise RuntimeError(f"{component} has a call in flight or is loading")

    def _container_changed(self, model: LocalModel, container: Any) -> None:
        if container is None:
            self.containers.pop(model.id, None)
        else:
            self.containers[model.id] = container

    def _wait_for_ping(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            for loaded in self.loaded:
                while True:
                    try:
                        if client.get(f"{loaded.container_url}/ping").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{loaded.model.id} did not become healthy")
                    time.sleep(0.05)

    def fault(self, endpoint: str, kind: str, times: int = 1, **params: Any) -> Fault:
        assert self.emulator is not None, "start() the stack first"
        return self.emulator.faults.add(endpoint, kind, times, **params)

    def stop(self) -> None:
        if self.components is not None:
            self.components.stop()
        for container in list(self.containers.values()):
            close = getattr(container, "close", None)
            if close is not None:
                close()
        self._servers.stop()


def registry_entries(
    loaded: Iterable[LoadedModel], created: int, wake_estimates: dict[str, float] | None
) -> list[RegistryEntry]:
    """The registry of the loaded models; with scale to zero (`wake_estimates`), each
    names its inference component (its endpoint's name) and its wake estimate."""
    if wake_estimates is None:
        return [m.model.entry(created) for m in loaded]
    return [
        m.model.entry(
            created,
            inference_component=m.model.endpoint_name,
            wake_seconds=wake_estimates.get(m.model.id),
        )
        for m in loaded
    ]
