"""Fault injection for the emulator: one API for tests, benches and users' own CI.

`POST /_emulator/faults` with `{"endpoint": "<name or *>", "kind": ..., "times": 1,
...params}` (or `FaultBook.add(...)` in-process). Each matching request consumes one
use. Kinds and their parameters:

- throttle                      SageMaker's ThrottlingException
- model_error  status, message  the container answers `status` (ModelError)
- timeout      seconds          the container never answers: SageMaker's timeout
                                error after `seconds` (default: the invoke limit)
- not_ready                     ModelNotReadyException (endpoint scaling/creating)
- stream_error after, message   a ModelStreamError event after `after` parts
- stall        seconds, after   the container goes silent for `seconds` (streams:
                                after `after` parts)
- split_http   offsets          event-stream bytes cut into HTTP chunks at offsets
- split_parts  offsets          container bytes cut into PayloadParts at offsets
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal[
    "throttle",
    "model_error",
    "timeout",
    "not_ready",
    "stream_error",
    "stall",
    "split_http",
    "split_parts",
]
KINDS: frozenset[str] = frozenset(FaultKind.__args__)  # type: ignore[attr-defined]
STREAM_ONLY: frozenset[str] = frozenset({"stream_error", "split_http", "split_parts"})


@dataclass
class Fault:
    endpoint: str
    kind: str
    times: int = 1
    params: dict[str, Any] = field(default_factory=dict)

    def int_param(self, name: str, default: int) -> int:
        return int(self.params.get(name, default))

    def float_param(self, name: str, default: float) -> float:
        return float(self.params.get(name, default))

    def offsets(self) -> list[int]:
        return sorted({int(o) for o in self.params.get("offsets", [])})


class FaultBook:
    """Pending faults, consumed in the order they were added."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, endpoint: str, kind: str, times: int = 1, **params: Any) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; kinds: {sorted(KINDS)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        fault = Fault(endpoint, kind, times, params)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, endpoint: str, streaming: bool) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.endpoint not in ("*", endpoint):
                    continue
                if fault.kind in STREAM_ONLY and not streaming:
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None
