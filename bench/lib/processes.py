"""The bench's child processes: started, waited for until they answer, and all
stopped however the run ends."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from . import HOST, ROOT
from .machine import rss_tree_mib

Ready = Callable[[httpx.Client], httpx.Response]  # a request that answers 200 when ready


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str  # base URL, no trailing slash
    log: Path
    started_s: float  # process start -> first successful response

    def rss_mib(self) -> float:
        return rss_tree_mib(self.proc.pid)


class Processes:
    """Every child this bench starts; `stop_all` ends them in reverse order (normal exit,
    exceptions, Ctrl-C and SIGTERM alike). Each child leads a process group of its own,
    so a Ctrl-C in the terminal reaches only this script, which then stops them; a child
    is ended by its group id, which is its own pid (LiteLLM may fork helpers)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._procs: list[subprocess.Popen[bytes]] = []

    def spawn(
        self, name: str, argv: Sequence[str], env: dict[str, str]
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                list(argv),
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._procs.append(proc)
        return proc, log

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        *,
        url: str,
        ready: Ready,
        timeout: float = 120.0,
    ) -> Server:
        """Spawns a server and returns once `ready` answers 200."""
        began = time.perf_counter()
        proc, log = self.spawn(name, argv, env)
        done = wait_until_ok(proc, ready, log, timeout)
        return Server(name, proc, url, log, done - began)

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc)


def free_port() -> int:
    """A free port on 127.0.0.1 for a server that takes --port (another process taking
    it in between is not a concern on a bench machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until_ok(
    proc: subprocess.Popen[bytes], request: Ready, log: Path, timeout: float = 120.0
) -> float:
    """Polls until `request` answers 200 and returns when it did (perf_counter).
    Connection refused means not listening yet: try again a few ms later."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=httpx.Timeout(30.0, connect=1.0)) as client:
        while True:
            try:
                response = request(client)
            except httpx.TransportError:
                pass
            else:
                if response.status_code == 200:
                    return time.perf_counter()
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
            if proc.poll() is not None:
                raise RuntimeError(f"exited with {proc.returncode}:\n{tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout:.0f} s:\n{tail(log)}")
            time.sleep(0.005)


@contextlib.contextmanager
def interrupts_unwind() -> Iterator[None]:
    """Ctrl-C and SIGTERM both unwind as KeyboardInterrupt, so the `finally` that stops
    the children runs (SIGINT too when this was started with it ignored, as shells do
    for background jobs)."""

    def handler(signum: int, _: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
