"""The whole local backend: containers + SageMaker-runtime emulator, started together.

stack = LocalStack(["echo/local"]).start()
stack.emulator_url, stack.registry
stack.fault("emd-echo-local", "throttle", times=2)
stack.stop()
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from emd_proxy.log import logger
from emd_proxy.registry import Registry

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
    def __init__(self, model_ids: Iterable[str] | None = None, invoke_timeout: float = 60.0):
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
        self.containers: dict[str, Any] = {}

    def start(self) -> LocalStack:
        created = int(time.time())
        endpoints: dict[str, str] = {}
        for model in self.models:
            container, seconds = model.build()
            self.containers[model.id] = container
            url = self._servers.add(container.app())
            self.loaded.append(LoadedModel(model, url, seconds))
            endpoints[model.entry(created).endpoint] = url
            logger.info(
                "model loaded", extra={"model": model.id, "load_seconds": round(seconds, 3)}
            )
        self.emulator = Emulator(endpoints, invoke_timeout=self.invoke_timeout)
        self.emulator_url = self._servers.add(self.emulator.app(), lifespan=True)
        self._servers.start()
        self._wait_for_ping()
        self.registry = Registry(m.entry(created) for m in self.models)
        return self

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
        for container in self.containers.values():
            close = getattr(container, "close", None)
            if close is not None:
                close()
        self._servers.stop()
