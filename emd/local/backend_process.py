"""The local backend (containers + emulator) in a child process.

`emd serve` runs the proxy in its own process and the backend here, as in AWS, where
SageMaker is elsewhere: model work and the emulator then never hold the proxy's GIL,
and the two use both cores. Same `LocalStack`, same URLs and fault API; only the
process differs (the integration tests keep the backend in-process to call it)."""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from emd_proxy.registry import Registry

from .models import LOCAL_MODELS
from .stack import LoadedModel, LocalStack, registry_entries

_START_TIMEOUT = 300.0


def _serve(
    model_ids: list[str] | None,
    invoke_timeout: float,
    scale_to_zero_after: float | None,
    simulated_load_seconds: float,
    conn: Connection,
) -> None:
    # Ctrl-C reaches the whole process group: the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stack = LocalStack(
            model_ids,
            invoke_timeout=invoke_timeout,
            scale_to_zero_after=scale_to_zero_after,
            simulated_load_seconds=simulated_load_seconds,
        ).start()
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        conn.send({"error": str(exc)})
        return
    entries = stack.registry.entries()
    conn.send(
        {
            "emulator_url": stack.emulator_url,
            "control_url": stack.control_url,
            "wake_estimates": stack.wake_estimates(),
            "created": entries[0].created if entries else 0,
            "loaded": [(m.model.id, m.container_url, m.load_seconds) for m in stack.loaded],
        }
    )
    with contextlib.suppress(EOFError):
        conn.recv()  # "stop", or EOF when the parent is gone
    stack.stop()


@dataclass
class BackendProcess:
    """Looks like a started `LocalStack` to `emd serve`."""

    emulator_url: str
    registry: Registry
    loaded: list[LoadedModel]
    _process: Any
    _conn: Connection
    # The local SageMaker control plane, with scale to zero ("" without).
    control_url: str = ""

    @classmethod
    def start(
        cls,
        model_ids: list[str] | None,
        invoke_timeout: float,
        scale_to_zero_after: float | None = None,
        simulated_load_seconds: float = 2.0,
    ) -> BackendProcess:
        unknown = [i for i in model_ids or [] if i not in LOCAL_MODELS]
        if unknown:
            raise ValueError(f"unknown local models {unknown}; choose from {list(LOCAL_MODELS)}")
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=_serve,
            args=(model_ids, invoke_timeout, scale_to_zero_after, simulated_load_seconds, child),
            name="emd-backend",
            daemon=True,
        )
        process.start()
        child.close()
        if not parent.poll(_START_TIMEOUT):
            process.kill()
            raise RuntimeError("the local models did not start in time")
        try:
            ready: dict[str, Any] = parent.recv()
        except EOFError as exc:
            raise RuntimeError("the local backend process died while starting") from exc
        if "error" in ready:
            process.join(5)
            raise RuntimeError(ready["error"])
        loaded = [
            LoadedModel(LOCAL_MODELS[model_id], url, seconds)
            for model_id, url, seconds in ready["loaded"]
        ]
        registry = Registry(registry_entries(loaded, ready["created"], ready["wake_estimates"]))
        return cls(ready["emulator_url"], registry, loaded, process, parent, ready["control_url"])

    def stop(self, timeout: float = 3.0) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(1)
