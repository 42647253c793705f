"""How fast `emd serve` stops: SIGTERM -> process exit, with an idle keep-alive
connection open (the README promises "shuts down within 2 seconds"; the integration
test only guards against a hang, as tests do not assert on speed).

Each run starts `emd serve --port 0 --model echo/local` as a user would (the venv's
`emd` script, a config directory of its own so nothing in ~/.config/emd is touched),
reads its URL from the banner, makes one authenticated chat call and leaves that
connection idle in the client's pool, then signals the process (not its group: the
backend child is emd serve's to stop) and times its exit."""

from __future__ import annotations

import os
import re
import select
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from .chat import MESSAGE, chat_body, json_headers
from .fleet import API_KEY, OURS_MODEL, python_env
from .processes import Processes, tail

LIMIT_S = 2.0  # README: "shuts down within 2 seconds"
START_TIMEOUT_S = 120.0
EXIT_TIMEOUT_S = 30.0  # beyond this it hangs: killed, and the run fails
_SERVING = re.compile(r"serving at (http://\S+/v1)")
_STOPPED = re.compile(r"emd serve: stopped \(([\d.]+) s to shut down\)")


def emd_command() -> list[str]:
    """The `emd` script next to this interpreter (.venv/bin/emd), else `python -m emd`."""
    script = Path(sys.executable).parent / "emd"
    return [str(script)] if script.exists() else [sys.executable, "-m", "emd"]


def wait_for_url(proc: subprocess.Popen[bytes], log: Path) -> str:
    """The base URL from the banner (emd serve flushes stdout after printing it)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if m := _SERVING.search(log.read_text(errors="replace")):
            return m.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"emd serve exited with {proc.returncode}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"emd serve printed no URL in {START_TIMEOUT_S:.0f} s")
        time.sleep(0.02)


def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Blocks until the process exits (True) or `timeout` passes. A pidfd wakes us at
    the exit itself; Popen.wait polls with sleeps up to 50 ms, which would be counted."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux >= 5.3: Popen's polling it is
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    finally:
        os.close(fd)


def live_members(pgid: int) -> list[str]:
    """Command lines of the group's processes that still run. Zombies do not count:
    multiprocessing's resource tracker exits once emd serve is gone and then waits
    for init to reap it, which in a container can take a while."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return found


def one_shutdown(procs: Processes, work: Path, i: int) -> dict[str, Any]:
    config_dir = work / f"emd-config-{i}"
    env = python_env(EMD_CONFIG_DIR=str(config_dir), EMD_API_KEY=API_KEY)
    argv = [*emd_command(), "serve", "--port", "0", "--model", OURS_MODEL]
    began = time.perf_counter()
    proc, log = procs.spawn(f"emd-serve-{i}", argv, env)
    try:
        url = wait_for_url(proc, log)
        started = time.perf_counter() - began
        with httpx.Client(timeout=httpx.Timeout(10.0)) as client:
            answer = client.post(
                f"{url}/chat/completions",
                content=chat_body(OURS_MODEL, max_tokens=16),
                headers=json_headers(API_KEY),
            )
            if answer.status_code != 200:
                raise RuntimeError(f"emd serve: HTTP {answer.status_code}: {answer.text[:300]}")
            if answer.json()["choices"][0]["message"]["content"] != MESSAGE:
                raise RuntimeError(f"emd serve answered {answer.text[:300]}")
            if answer.headers.get("connection", "").lower() == "close":
                raise RuntimeError("emd serve closed the connection; none is left open")
            # The connection now sits idle in the client's pool, as an SDK's would.
            signalled = time.perf_counter()
            os.kill(proc.pid, signal.SIGTERM)
            exited = wait_exit(proc, EXIT_TIMEOUT_S)
            seconds = time.perf_counter() - signalled
        code = proc.wait(5) if exited else None
        # Its children go with it (the backend is stopped before emd serve exits; the
        # resource tracker follows on its own): a moment for them, then look.
        deadline = time.monotonic() + 2.0
        while (leftover := live_members(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        procs.stop(proc)  # kills whatever is left of the group (a hang, a stray child)
    text = log.read_text(errors="replace")
    own = _STOPPED.search(text)
    run = {
        "seconds": round(seconds, 3) if exited else None,
        "exit_code": code,
        "start_to_url_s": round(started, 3),
        # What emd serve itself prints: from uvicorn's exit to the backend stopped.
        "reported_stop_s": float(own.group(1)) if own else None,
        "traceback": "Traceback" in text,
        "left_running": leftover,
    }
    run["pass"] = bool(
        exited and seconds < LIMIT_S and code == 0 and not run["traceback"] and not leftover
    )
    return run


def bench_shutdown(procs: Processes, work: Path, runs: int) -> dict[str, Any]:
    results = [one_shutdown(procs, work, i) for i in range(runs)]
    timed = [r["seconds"] for r in results if r["seconds"] is not None]
    return {
        "command": "emd serve --port 0 --model echo/local",
        "runs": results,
        "seconds": timed,
        "median_s": round(statistics.median(timed), 3) if timed else None,
        "max_s": max(timed) if len(timed) == runs else None,
        "limit_s": LIMIT_S,
        "pass": all(r["pass"] for r in results),
    }
