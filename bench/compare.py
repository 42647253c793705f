"""Side by side in one run: what our proxy adds, next to LiteLLM's proxy and a bare
pass-through, all in front of the same instant echo model (issue 8).

    .venv/bin/python bench/compare.py [--quick] [--out bench/results/compare.json]

Targets, each server its own process on 127.0.0.1:
  direct        echo/local as a plain OpenAI-compatible server (targets.py direct)
  litellm       LiteLLM proxy (own venv, bench/.venvs/litellm) -> direct
  floor         bare Starlette pass-through (targets.py floor) -> direct
  ours          our proxy as the Lambda runs it (lambdas/run.sh's uvicorn command) ->
                SageMaker-runtime emulator -> echo container (targets.py backend)
  ours_backend  the emulator's InvokeEndpoint called directly: ours' backend, as
                `direct` is LiteLLM's and the floor's; added latency = target - backend
Extra, for reading the numbers (not issue 8's targets):
  ours_stub     the same proxy in front of `stub`, an instant SageMaker-runtime endpoint
                (targets.py stub): the emulator's own hop out of the picture
  stub          that endpoint called directly (ours_stub's backend)
  floor_aiohttp the floor with aiohttp as its client (ours' client) instead of httpx
See bench/README.md for what each number means and how it is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from proxy_latency import Target, call_once, interleaved, machine, summary_ms

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
API_KEY = "sk-bench-ours"
LITELLM_KEY = "sk-bench-litellm"  # LiteLLM's master key (general_settings.master_key)
LITELLM_REQUIREMENT = "litellm[proxy]==1.108.7"
LITELLM_VENV = BENCH_DIR / ".venvs" / "litellm"
OURS_MODEL = "echo/local"
ECHO_ENDPOINT = "emd-echo-local"
# Thirteen words: the echo model streams them back one chunk each. The first one, in
# no other part of any answer, marks the first token in any framing (SSE, JSON, AWS
# event-stream payloads).
MESSAGE = "Zephyr quick brown fox jumps over the lazy dog near the river bank."
FIRST_TOKEN = b"Zephyr"
GAP_DELAY_MS = 20.0  # the backend's chunk interval for the gap measurement
# A chunk that reaches the client within this of the previous one was held back on the
# way (the backend spaces them GAP_DELAY_MS apart).
HELD_BACK_S = 0.002
CONCURRENCY = 32
OFFICIAL = ("direct", "ours", "litellm", "floor")  # issue 8's four targets

# Issue 8's targets: (key, description, limit).
GOALS = (
    ("added_p50_vs_litellm", "our added p50 <= 0.15x LiteLLM's", 0.15),
    ("added_p50_vs_floor", "our added p50 <= 2x the floor's", 2.0),
    ("p99_vs_p50", "our added p99 <= 3x our added p50", 3.0),
    ("throughput_vs_litellm", "concurrent requests/s >= 4x LiteLLM's", 4.0),
    ("ttft_vs_litellm", "streaming added TTFT <= 0.15x LiteLLM's", 0.15),
    ("no_held_back_chunks", "streaming never holds back a chunk (gaps ~20 ms)", 0),
    ("cold_start_s", "cold start to first response <= 600 ms", 0.6),
    ("idle_rss_mib", "idle RSS <= 120 MB", 120.0),
)


# --- processes ------------------------------------------------------------------------
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


def rss_tree_mib(pid: int) -> float:
    """Resident memory of a process and its descendants (VmRSS in /proc), MiB."""
    total_kb = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
                    break
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total_kb / 1024


def tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until_ok(
    proc: subprocess.Popen[bytes],
    request: Callable[[httpx.Client], httpx.Response],
    log: Path,
    timeout: float = 120.0,
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


def chat_body(model: str | None, *, stream: bool = False, **extra: Any) -> bytes:
    """The one request every target gets (`model` only where the target routes on it:
    the echo container refuses names other than its own, as vLLM does)."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": MESSAGE}], **extra}
    if model is not None:
        body["model"] = model
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def python_env(**extra: str) -> dict[str, str]:
    """This environment without the proxy's own settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMD_", "POWERTOOLS_"))}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


# --- starting the servers -------------------------------------------------------------
def ensure_litellm() -> Path:
    """LiteLLM in its own venv (its pins clash with ours), created once and reused."""
    python = LITELLM_VENV / "bin" / "python"
    wanted = LITELLM_REQUIREMENT.split("==")[1]
    if python.exists():
        probe = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == wanted:
            return LITELLM_VENV / "bin" / "litellm"
    print(f"installing {LITELLM_REQUIREMENT} into {LITELLM_VENV} (once; about a minute)")
    if not python.exists():
        # A venv made from ours is based on the same base interpreter, not nested in it.
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, LITELLM_REQUIREMENT], check=True)
    return LITELLM_VENV / "bin" / "litellm"


def start(
    procs: Processes,
    name: str,
    argv: Sequence[str],
    env: dict[str, str],
    *,
    url: str,
    ready: Callable[[httpx.Client], httpx.Response],
    timeout: float = 120.0,
) -> Server:
    began = time.perf_counter()
    proc, log = procs.spawn(name, argv, env)
    done = wait_until_ok(proc, ready, log, timeout)
    return Server(name, proc, url, log, done - began)


def start_target(procs: Processes, kind: str, *extra: str, name: str = "") -> Server:
    """direct, floor or stub from targets.py (`name`, for its log, defaults to kind)."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    argv = [sys.executable, str(BENCH_DIR / "targets.py"), kind, "--port", str(port), *extra]
    path = "/v1/chat/completions" if kind != "stub" else f"/endpoints/{ECHO_ENDPOINT}/invocations"
    return start(
        procs,
        name or kind,
        argv,
        python_env(),
        url=url,
        ready=lambda c: c.post(url + path, content=chat_body(None)),
    )


def start_backend(procs: Processes, work: Path) -> tuple[Server, list[dict[str, Any]]]:
    """Emulator + echo container; returns them and the registry that names them."""
    ready_file = work / "backend.json"
    argv = [sys.executable, str(BENCH_DIR / "targets.py"), "backend"]
    began = time.perf_counter()
    proc, log = procs.spawn("ours_backend", [*argv, "--ready-file", str(ready_file)], python_env())
    deadline = time.monotonic() + 60
    while not ready_file.exists():  # written once the containers answer /ping
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the emulator did not start:\n{tail(log)}")
        time.sleep(0.02)
    info = json.loads(ready_file.read_text())
    url = info["emulator_url"]
    invoke = f"{url}/endpoints/{ECHO_ENDPOINT}/invocations"
    done = wait_until_ok(proc, lambda c: c.post(invoke, content=chat_body(None)), log)
    return Server("ours_backend", proc, url, log, done - began), info["registry"]


def ours_env(
    sagemaker_url: str, registry: list[dict[str, Any]], work: Path, log_level: str
) -> dict[str, str]:
    """The Lambda's configuration (registry inline, keys from a file), with boto3
    pointed at a local SageMaker-runtime the way `emd serve` does it."""
    from emd.local.gateway import LOCAL_AWS_ENV

    keys = work / "keys.json"
    keys.write_text(json.dumps({"default": API_KEY}))
    return python_env(
        **LOCAL_AWS_ENV,
        AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=sagemaker_url,
        EMD_REGISTRY=json.dumps(registry),
        EMD_API_KEYS_FILE=str(keys),
        # As `emd serve` (emd.local.gateway.point_boto3_at): nothing collects the
        # embedded-metric lines locally. The access log stays on (see --ours-log-level).
        EMD_USAGE_METRICS="0",
        POWERTOOLS_LOG_LEVEL=log_level,
    )


def start_ours(procs: Processes, name: str, env: dict[str, str]) -> Server:
    """lambdas/run.sh's command line (the Lambda's own), on a local port."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "emd_proxy.main:create_app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-access-log",
    ]
    chat = f"{url}/v1/chat/completions"
    return start(
        procs,
        name,
        argv,
        env,
        url=url,
        ready=lambda c: c.post(chat, content=chat_body(OURS_MODEL), headers=bearer(API_KEY)),
    )


def start_litellm(procs: Processes, litellm: Path, direct: Server, work: Path) -> Server:
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: echo\n"
        "    litellm_params:\n"
        "      model: openai/echo\n"
        f"      api_base: {direct.url}/v1\n"
        "      api_key: not-used\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
    )
    port = free_port()
    url = f"http://{HOST}:{port}"
    # Offline: the bundled cost map instead of a download, no telemetry.
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY_DISABLED": "true",
    }
    argv = [str(litellm), "--config", str(config), "--host", HOST, "--port", str(port)]
    chat = f"{url}/v1/chat/completions"
    return start(
        procs,
        "litellm",
        argv,
        env,
        url=url,
        ready=lambda c: c.post(chat, content=chat_body("echo"), headers=bearer(LITELLM_KEY)),
        timeout=180,
    )


# --- the targets ----------------------------------------------------------------------
@dataclass
class Endpoint:
    """How to call one target."""

    name: str
    url: str  # non-streaming
    stream_url: str
    headers: dict[str, str]
    model: str | None
    backend: str = ""  # the target whose latency is subtracted; "" for a backend
    server: Server | None = None  # the proxy process whose memory is measured
    sse: bool = True  # streams SSE to the client (the SageMaker ones stream event-stream)

    def body(self, *, stream: bool = False, **extra: Any) -> bytes:
        return chat_body(self.model, stream=stream, **extra)


def sagemaker_endpoint(name: str, base: str) -> Endpoint:
    """A SageMaker-runtime endpoint called directly; it takes unsigned calls. The body
    is the client's without `model`, as the proxy sends it."""
    invoke = f"{base}/endpoints/{ECHO_ENDPOINT}"
    return Endpoint(
        name,
        f"{invoke}/invocations",
        f"{invoke}/invocations-response-stream",
        {"Content-Type": "application/json"},
        None,
        sse=False,
    )


def proxy_endpoint(
    name: str, server: Server, key: str | None, model: str | None, backend: str
) -> Endpoint:
    chat = f"{server.url}/v1/chat/completions"
    headers = bearer(key) if key else {"Content-Type": "application/json"}
    return Endpoint(name, chat, chat, headers, model, backend, server)


@dataclass
class Fleet:
    servers: dict[str, Server] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    ours_env: dict[str, str] = field(default_factory=dict)


def start_fleet(procs: Processes, work: Path, litellm: Path, log_level: str) -> Fleet:
    fleet = Fleet()
    s = fleet.servers
    s["direct"] = start_target(procs, "direct")
    s["ours_backend"], registry = start_backend(procs, work)
    s["stub"] = start_target(procs, "stub")
    s["floor"] = start_target(procs, "floor", "--upstream", s["direct"].url)
    s["floor_aiohttp"] = start_target(
        procs, "floor", "--upstream", s["direct"].url, "--client", "aiohttp", name="floor_aiohttp"
    )
    fleet.ours_env = ours_env(s["ours_backend"].url, registry, work, log_level)
    s["ours"] = start_ours(procs, "ours", fleet.ours_env)
    stub_env = ours_env(s["stub"].url, registry, work, log_level)
    s["ours_stub"] = start_ours(procs, "ours_stub", stub_env)
    s["litellm"] = start_litellm(procs, litellm, s["direct"], work)
    direct = s["direct"]
    chat = f"{direct.url}/v1/chat/completions"
    found = [
        Endpoint("direct", chat, chat, {"Content-Type": "application/json"}, None),
        sagemaker_endpoint("ours_backend", s["ours_backend"].url),
        proxy_endpoint("ours", s["ours"], API_KEY, OURS_MODEL, "ours_backend"),
        proxy_endpoint("litellm", s["litellm"], LITELLM_KEY, "echo", "direct"),
        proxy_endpoint("floor", s["floor"], None, None, "direct"),
        sagemaker_endpoint("stub", s["stub"].url),
        proxy_endpoint("ours_stub", s["ours_stub"], API_KEY, OURS_MODEL, "stub"),
        proxy_endpoint("floor_aiohttp", s["floor_aiohttp"], None, None, "direct"),
    ]
    fleet.endpoints = {e.name: e for e in found}
    return fleet


# --- 1. sequential, non-streaming -----------------------------------------------------
def bench_sequential(eps: dict[str, Endpoint], per_target: int, block: int) -> dict[str, Any]:
    """Every target, plus `ours_backend_stream` (info): the emulator's streaming call
    read to the end, which is what ours makes of every chat request, streamed or not;
    it splits ours' added latency into the proxy and the emulator's streaming path."""
    timeout = httpx.Timeout(30.0)
    targets = [
        Target(e.name, httpx.Client(timeout=timeout), e.url, e.body(max_tokens=16), e.headers)
        for e in eps.values()
    ]
    backend = eps["ours_backend"]
    stream = Target(
        "ours_backend_stream",
        httpx.Client(timeout=timeout),
        backend.stream_url,
        backend.body(stream=True, max_tokens=16),
        backend.headers,
    )
    try:
        for target in targets:  # every target answers the echo, not just 200
            answer = target.client.post(target.url, content=target.body, headers=target.headers)
            content = answer.json()["choices"][0]["message"]["content"]
            if content != MESSAGE:
                raise RuntimeError(f"{target.name} answered {content!r}")
        samples, ran = interleaved(
            [*targets, stream],
            call_once,  # reads the whole body, the event stream too
            per_target=per_target,
            block=block,
            warmup=100,
            budget_s=300,
        )
    finally:
        for target in [*targets, stream]:
            target.client.close()
    out: dict[str, Any] = {"requests_per_target": ran, "block": block}
    for name, values in samples.items():
        out[name] = summary_ms(values)
    return out


# --- 2. concurrent, non-streaming -----------------------------------------------------
@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    rss_peak_mib: float = 0.0
    first_error: str = ""

    def add(self, other: LoadResult) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.seconds += other.seconds
        self.latencies += other.latencies
        self.rss_peak_mib = max(self.rss_peak_mib, other.rss_peak_mib)
        self.first_error = self.first_error or other.first_error


def raw_request(url: str, body: bytes, headers: dict[str, str]) -> tuple[str, int, bytes]:
    parsed = httpx.URL(url)
    lines = [
        f"POST {parsed.raw_path.decode()} HTTP/1.1",
        f"Host: {parsed.host}:{parsed.port}",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return parsed.host, int(parsed.port or 80), ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, connection kept) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length: int | None = None
    chunked = False
    keep = True
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep = b"close" not in value.lower()
    if chunked:
        body = bytearray()
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
        return status, bytes(body), keep
    if length is not None:
        return status, await reader.readexactly(length), keep
    return status, await reader.read(), False


async def load_client(raw: tuple[str, int, bytes], stop_at: float, result: LoadResult) -> None:
    """One client: a keep-alive connection, one request after the other until `stop_at`.
    A bare HTTP/1.1 client, so the load generator (on the same 2 cores) costs far less
    CPU than what it measures; an httpx client tops out around 500 requests/s."""
    host, port, request = raw
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (started := time.perf_counter()) < stop_at:
            writer.write(request)
            status, body, keep = await read_response(reader)
            result.latencies.append(time.perf_counter() - started)
            result.requests += 1
            if status != 200 or FIRST_TOKEN not in body:
                result.errors += 1
                result.first_error = result.first_error or f"{status}: {body[:200]!r}"
            if not keep:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


def run_load(
    url: str, body: bytes, headers: dict[str, str], seconds: float, server: Server | None
) -> LoadResult:
    """CONCURRENCY clients for `seconds`, sampling the proxy's RSS meanwhile."""
    import uvloop

    raw = raw_request(url, body, headers)
    result = LoadResult()
    stop_sampling = threading.Event()

    def sample_rss() -> None:
        while server is not None and not stop_sampling.wait(0.1):
            result.rss_peak_mib = max(result.rss_peak_mib, server.rss_mib())

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()

    async def main() -> None:
        began = time.perf_counter()
        stop_at = began + seconds
        await asyncio.gather(*(load_client(raw, stop_at, result) for _ in range(CONCURRENCY)))
        result.seconds = time.perf_counter() - began

    try:
        uvloop.run(main())
    finally:
        stop_sampling.set()
        sampler.join()
    return result


def bench_concurrent(eps: dict[str, Endpoint], rounds: int, seconds: float) -> dict[str, Any]:
    """Rounds of one block per target (order reversed every other round) so drift hits
    every target alike, after a short warm-up block each. `ours_backend_stream` (info):
    the emulator's streaming path, which is what ours asks of it."""
    plan: list[tuple[str, str, bytes, Endpoint]] = [
        (e.name, e.url, e.body(max_tokens=16), e) for e in eps.values()
    ]
    backend = eps["ours_backend"]
    plan.append(
        (
            "ours_backend_stream",
            backend.stream_url,
            backend.body(stream=True, max_tokens=16),
            backend,
        )
    )
    totals = {name: LoadResult() for name, *_ in plan}
    for _, url, body, e in plan:
        run_load(url, body, e.headers, min(1.0, seconds), e.server)
    for i in range(rounds):
        for name, url, body, e in plan if i % 2 == 0 else plan[::-1]:
            totals[name].add(run_load(url, body, e.headers, seconds, e.server))
    out: dict[str, Any] = {"clients": CONCURRENCY, "rounds": rounds, "seconds_per_block": seconds}
    for name, total in totals.items():
        out[name] = {
            "requests": total.requests,
            "errors": total.errors,
            "first_error": total.first_error or None,
            "requests_per_s": round(total.requests / total.seconds, 1) if total.seconds else 0.0,
            "latency_ms": summary_ms(total.latencies) if total.latencies else None,
            "rss_peak_mib": round(total.rss_peak_mib, 1) if total.rss_peak_mib else None,
        }
    return out


# --- 3. streaming ---------------------------------------------------------------------
def first_token_once(target: Target) -> float:
    """Seconds from send to the first bytes holding the first answer word (in any
    framing); drains the rest so the connection is reused."""
    started = time.perf_counter()
    elapsed = None
    seen = b""
    with target.client.stream(
        "POST", target.url, content=target.body, headers=target.headers
    ) as response:
        if response.status_code != 200:
            response.read()
            raise RuntimeError(f"{target.name}: HTTP {response.status_code}: {response.text}")
        for chunk in response.iter_raw():
            if elapsed is None:
                seen += chunk
                if FIRST_TOKEN in seen:
                    elapsed = time.perf_counter() - started
    if elapsed is None:
        raise RuntimeError(f"{target.name}: the first token never came")
    return elapsed


def content_times(target: Target) -> tuple[list[float], bool]:
    """When each content chunk of one SSE stream arrived, and whether the stream ended
    with `[DONE]`."""
    times: list[float] = []
    done = False
    buffer = b""
    with target.client.stream(
        "POST", target.url, content=target.body, headers=target.headers
    ) as response:
        if response.status_code != 200:
            response.read()
            raise RuntimeError(f"{target.name}: HTTP {response.status_code}: {response.text}")
        for chunk in response.iter_raw():
            now = time.perf_counter()
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                if not event.startswith(b"data: "):
                    continue  # an SSE comment (keep-alive)
                if event == b"data: [DONE]":
                    done = True
                    continue
                choices = json.loads(event[6:]).get("choices") or []
                if choices and (choices[0].get("delta") or {}).get("content"):
                    times.append(now)
    return times, done


def bench_streaming(eps: dict[str, Endpoint], ttft_per_target: int, streams: int) -> dict[str, Any]:
    timeout = httpx.Timeout(30.0)
    # Time to first token, with an instant backend: the numbers are the hops themselves.
    targets = [
        Target(e.name, httpx.Client(timeout=timeout), e.stream_url, e.body(stream=True), e.headers)
        for e in eps.values()
    ]
    try:
        samples, ran = interleaved(
            targets,
            first_token_once,
            per_target=ttft_per_target,
            block=max(1, min(50, ttft_per_target // 6)),
            warmup=20,
            budget_s=150,
        )
    finally:
        for target in targets:
            target.client.close()
    out: dict[str, Any] = {"ttft_streams_per_target": ran, "gap_delay_ms": GAP_DELAY_MS}
    for name, values in samples.items():
        out[name] = {"ttft_ms": summary_ms(values)}

    # Inter-chunk gaps behind a backend that spaces its chunks GAP_DELAY_MS apart, on
    # every target that streams SSE to its client.
    targets = [
        Target(
            e.name,
            httpx.Client(timeout=timeout),
            e.stream_url,
            e.body(stream=True, echo_delay_ms=GAP_DELAY_MS),
            e.headers,
        )
        for e in eps.values()
        if e.sse
    ]
    gaps: dict[str, list[float]] = {t.name: [] for t in targets}
    incomplete = dict.fromkeys(gaps, 0)
    block = max(1, min(5, streams))
    rounds = (streams + block - 1) // block
    try:
        for target in targets:
            content_times(target)  # warm-up
        for i in range(rounds):
            for target in targets if i % 2 == 0 else targets[::-1]:
                for _ in range(block):
                    times, done = content_times(target)
                    if not done or len(times) != len(MESSAGE.split()):
                        incomplete[target.name] += 1
                    gaps[target.name] += [b - a for a, b in itertools.pairwise(times)]
    finally:
        for target in targets:
            target.client.close()
    out["gap_streams_per_target"] = block * rounds
    for name, values in gaps.items():
        out[name]["gaps_ms"] = summary_ms(values)
        out[name]["held_back"] = sum(1 for g in values if g < HELD_BACK_S)
        out[name]["incomplete_streams"] = incomplete[name]
    return out


# --- 4. cold start --------------------------------------------------------------------
# In a fresh interpreter: how long the imports and create_app() take.
_BREAKDOWN = """
import json, time
t0 = time.perf_counter()
import emd_proxy.main
t1 = time.perf_counter()
emd_proxy.main.create_app()
t2 = time.perf_counter()
print(json.dumps({"import_s": round(t1 - t0, 3), "create_app_s": round(t2 - t1, 3)}))
"""


def bench_cold_start(procs: Processes, env: dict[str, str], runs: int) -> dict[str, Any]:
    """Fresh interpreters on the Lambda's command line, each timed from process start
    to its first successful chat completion (through the emulator)."""
    # Bytecode for our own modules, as the Lambda bundle carries it (infra/bundling.py).
    # Without it (a fresh clone, or PYTHONDONTWRITEBYTECODE=1, which never writes it)
    # every fresh interpreter compiles emd_proxy first: about 100 ms more.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "lambdas" / "emd_proxy")],
        check=True,
    )
    seconds: list[float] = []
    rss: list[float] = []
    for i in range(runs):
        server = start_ours(procs, f"cold-{i}", env)
        seconds.append(server.started_s)
        rss.append(server.rss_mib())
        procs.stop(server.proc)
    python = [sys.executable, "-c", _BREAKDOWN]
    run = subprocess.run(python, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return {
        "runs_s": [round(s, 3) for s in seconds],
        "median_s": round(statistics.median(seconds), 3),
        "min_s": round(min(seconds), 3),
        "rss_at_first_response_mib": round(statistics.median(rss), 1),
        "breakdown_s": json.loads(run.stdout.strip().splitlines()[-1]),
        "heaviest_imports": heaviest_imports(env),
    }


def heaviest_imports(env: dict[str, str], top: int = 12) -> list[dict[str, Any]]:
    """`python -X importtime` of `emd_proxy.main` and create_app(), by package: the
    cumulative time of each place where the import of a package started (so a
    package's row includes what it imports in turn, e.g. boto3 includes botocore)."""
    script = "import emd_proxy.main; emd_proxy.main.create_app()"
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    # Lines are "import time: self [us] | cumulative | name", nested imports indented
    # two spaces per level, each printed after the imports it triggered.
    entries: list[tuple[int, str, int, int]] = []
    for line in run.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            depth = (len(name) - len(name.lstrip())) // 2
            entries.append((depth, name.strip(), int(parts[0]), int(parts[1])))
    totals: dict[str, float] = {}
    parents: list[tuple[int, str]] = []  # (depth, package) of the enclosing imports
    for depth, name, _, cumulative in reversed(entries):
        while parents and parents[-1][0] >= depth:
            parents.pop()
        package = name.split(".")[0]
        if not parents or parents[-1][1] != package:
            totals[package] = totals.get(package, 0.0) + cumulative / 1000
        parents.append((depth, package))
    # emd_proxy's row is the whole import; the breakdown line shows it.
    ranked = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)
    return [{"package": p, "cumulative_ms": round(ms, 1)} for p, ms in ranked if p != "emd_proxy"][
        :top
    ]


# --- summary --------------------------------------------------------------------------
QS = ("p50", "p95", "p99")


def summarise(result: dict[str, Any], eps: dict[str, Endpoint]) -> None:
    seq, conc, stream = result["sequential"], result["concurrent"], result["streaming"]
    rows: dict[str, Any] = {}
    for name, e in eps.items():
        row: dict[str, Any] = {
            "backend": e.backend or None,
            "info_only": name not in OFFICIAL,
            "latency_ms": {q: seq[name][q] for q in (*QS, "mean")},
            "added_latency_ms": {
                q: round(seq[name][q] - seq[e.backend][q], 3) if e.backend else 0.0
                for q in (*QS, "mean")
            },
            "requests_per_s": conc[name]["requests_per_s"],
            "concurrent_errors": conc[name]["errors"],
            "concurrent_latency_ms": {
                q: (conc[name]["latency_ms"] or {}).get(q) for q in ("p50", "p99")
            },
            "ttft_ms": {q: stream[name]["ttft_ms"][q] for q in QS},
            "ttft_added_ms": {
                q: round(stream[name]["ttft_ms"][q] - stream[e.backend]["ttft_ms"][q], 3)
                if e.backend
                else 0.0
                for q in QS
            },
        }
        if e.sse:
            row["stream_gaps_ms"] = {
                q: stream[name]["gaps_ms"][q] for q in ("min", "p50", "p99", "max")
            }
            row["held_back_chunks"] = stream[name]["held_back"]
            row["incomplete_streams"] = stream[name]["incomplete_streams"]
        if e.server is not None:
            row["rss_mib"] = {
                "idle": result["memory"][name]["idle"],
                "under_load_peak": conc[name]["rss_peak_mib"],
                "after_load": result["memory"][name]["after_load"],
            }
            row["start_to_first_response_s"] = round(e.server.started_s, 3)
        rows[name] = row
    result["targets"] = rows
    result["ratios"] = ratios(rows, "ours")
    result["ratios_ours_stub"] = ratios(rows, "ours_stub")
    measured = goal_values(result, rows, "ours", result["cold_start"]["median_s"])
    measured_stub = goal_values(result, rows, "ours_stub", None)
    result["goals"] = [
        {
            "goal": key,
            "description": text,
            "limit": limit,
            "measured": measured[key],
            "pass": passes(key, measured[key], limit, rows["ours"]),
            # The same proxy in front of the instant stub (info): what it achieves when
            # its backend costs as little as LiteLLM's and the floor's.
            "measured_ours_stub": measured_stub[key],
        }
        for key, text, limit in GOALS
    ]


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b > 0 else float("inf")


def ratios(rows: dict[str, Any], ours: str) -> dict[str, float]:
    mine, lite, floor = rows[ours], rows["litellm"], rows["floor"]
    add = "added_latency_ms"
    return {
        "added_p50_over_litellm": ratio(mine[add]["p50"], lite[add]["p50"]),
        "added_p50_over_floor": ratio(mine[add]["p50"], floor[add]["p50"]),
        "added_p50_over_floor_aiohttp": ratio(mine[add]["p50"], rows["floor_aiohttp"][add]["p50"]),
        "added_p99_over_added_p50": ratio(mine[add]["p99"], mine[add]["p50"]),
        "requests_per_s_over_litellm": ratio(mine["requests_per_s"], lite["requests_per_s"]),
        "ttft_added_p50_over_litellm": ratio(
            mine["ttft_added_ms"]["p50"], lite["ttft_added_ms"]["p50"]
        ),
    }


def goal_values(
    result: dict[str, Any], rows: dict[str, Any], ours: str, cold_start: float | None
) -> dict[str, Any]:
    r = ratios(rows, ours)
    return {
        "added_p50_vs_litellm": r["added_p50_over_litellm"],
        "added_p50_vs_floor": r["added_p50_over_floor"],
        "p99_vs_p50": r["added_p99_over_added_p50"],
        "throughput_vs_litellm": r["requests_per_s_over_litellm"],
        "ttft_vs_litellm": r["ttft_added_p50_over_litellm"],
        "no_held_back_chunks": rows[ours]["held_back_chunks"] + rows[ours]["incomplete_streams"],
        "cold_start_s": cold_start,
        "idle_rss_mib": rows[ours]["rss_mib"]["idle"],
    }


def passes(key: str, value: float, limit: float, row: dict[str, Any]) -> bool:
    if key == "throughput_vs_litellm":
        return value >= limit
    if key == "no_held_back_chunks":
        # Nothing held back, every stream whole, and the gaps are the backend's own.
        gap = row["stream_gaps_ms"]["p50"]
        return value == 0 and abs(gap - GAP_DELAY_MS) <= GAP_DELAY_MS / 4
    return value <= limit


def warnings_for(result: dict[str, Any]) -> list[str]:
    found = []
    config, seq = result["config"], result["sequential"]
    if seq["requests_per_target"] < config["requests_per_target"]:
        found.append(
            f"sequential: ran {seq['requests_per_target']} requests per target, not "
            f"{config['requests_per_target']}, to stay within the time budget"
        )
    for name, row in result["concurrent"].items():
        if isinstance(row, dict) and row.get("errors"):
            found.append(f"concurrent: {name} had {row['errors']} errors ({row['first_error']})")
    conc = result["concurrent"]
    cap = conc["ours_backend_stream"]["requests_per_s"]
    if conc["ours"]["requests_per_s"] > 0.7 * cap:
        found.append(
            f"concurrent: ours ({conc['ours']['requests_per_s']:.0f}/s) is near what its "
            f"backend's streaming path serves alone ({cap:.0f}/s): the emulator, not the "
            "proxy, limits it here; ours_stub shows the proxy with an instant backend"
        )
    if config["quick"]:
        found.append("quick run: fewer samples than issue 8 asks for; use the full run")
    return found


# --- output ---------------------------------------------------------------------------
def render(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(120, shutil.get_terminal_size().columns))
    m, rows = result["machine"], result["targets"]
    console.print(
        f"[bold]compare[/bold]  {result['date']}  "
        f"({'quick' if result['config']['quick'] else 'full'} run)\n"
        f"{m['platform']} | {m['cpu_model']} | CPUs: {m['cpu_count']} "
        f"(usable {m['cpus_usable']}) | Python {m['python']}"
    )

    def label(name: str) -> str:
        return name if name in OFFICIAL else f"[dim]{name} (info)[/dim]"

    seq = result["sequential"]
    table = Table(
        title=f"Non-streaming, sequential: 1 client, {seq['requests_per_target']} requests per "
        f"target in blocks of {seq['block']} (ms; added = target - its backend)"
    )
    for column in ("target", "backend", *QS, "added p50", "added p95", "added p99"):
        table.add_column(column, justify="left" if column in ("target", "backend") else "right")
    for name, row in rows.items():
        lat, add = row["latency_ms"], row["added_latency_ms"]
        cells = [f"{lat[q]:.3f}" for q in QS]
        cells += [f"{add[q]:.3f}" if row["backend"] else "-" for q in QS]
        if name == "ours":
            cells = [f"[bold]{c}[/bold]" for c in cells]
        table.add_row(label(name), row["backend"] or "-", *cells)
    info = seq["ours_backend_stream"]
    table.add_row(label("ours_backend_stream"), "-", *(f"{info[q]:.3f}" for q in QS), "", "", "")
    console.print(table)

    conc = result["concurrent"]
    table = Table(
        title=f"Non-streaming, concurrent: {conc['clients']} clients, {conc['rounds']} blocks "
        f"of {conc['seconds_per_block']:.0f} s per target"
    )
    for column in (
        "target",
        "requests/s",
        "requests",
        "errors",
        "p50 ms",
        "p99 ms",
        "RSS peak MiB",
    ):
        table.add_column(column, justify="left" if column == "target" else "right")
    for name in [*rows, "ours_backend_stream"]:
        row = conc[name]
        lat = row["latency_ms"] or {}
        table.add_row(
            label(name),
            f"{row['requests_per_s']:.0f}",
            str(row["requests"]),
            str(row["errors"]),
            f"{lat.get('p50', float('nan')):.2f}",
            f"{lat.get('p99', float('nan')):.2f}",
            f"{row['rss_peak_mib']:.0f}" if row["rss_peak_mib"] else "-",
        )
    console.print(table)

    stream = result["streaming"]
    table = Table(
        title=f"Streaming: time to first token ({stream['ttft_streams_per_target']} streams per "
        f"target) and chunk gaps behind a backend pacing chunks {stream['gap_delay_ms']:.0f} ms "
        f"apart ({stream['gap_streams_per_target']} streams per target) (ms)"
    )
    for column in (
        "target",
        "TTFT p50",
        "TTFT p95",
        "added p50",
        "added p95",
        "gap min",
        "gap p50",
        "gap p99",
        "gap max",
        "held back",
    ):
        table.add_column(column, justify="left" if column == "target" else "right")
    for name, row in rows.items():
        ttft, add, gaps = row["ttft_ms"], row["ttft_added_ms"], row.get("stream_gaps_ms")
        gap_cells = [f"{gaps[q]:.1f}" for q in ("min", "p50", "p99", "max")] if gaps else ["-"] * 4
        held = str(row["held_back_chunks"] + row["incomplete_streams"]) if gaps else "-"
        table.add_row(
            label(name),
            f"{ttft['p50']:.3f}",
            f"{ttft['p95']:.3f}",
            f"{add['p50']:.3f}" if row["backend"] else "-",
            f"{add['p95']:.3f}" if row["backend"] else "-",
            *gap_cells,
            held,
        )
    console.print(table)

    cold = result["cold_start"]
    table = Table(title="Start-up and memory of the proxy processes")
    for column in (
        "target",
        "start -> first response",
        "RSS idle MiB",
        "RSS under load MiB",
        "RSS after load MiB",
    ):
        table.add_column(column, justify="left" if column == "target" else "right")
    for name, row in rows.items():
        if "rss_mib" not in row:
            continue
        rss = row["rss_mib"]
        started = f"{row['start_to_first_response_s'] * 1000:.0f} ms"
        if name == "ours":
            started = f"{cold['median_s'] * 1000:.0f} ms (median of {len(cold['runs_s'])} fresh)"
        table.add_row(
            label(name),
            started,
            f"{rss['idle']:.0f}",
            f"{rss['under_load_peak'] or 0:.0f}",
            f"{rss['after_load']:.0f}",
        )
    console.print(table)
    breakdown = cold["breakdown_s"]
    console.print(
        f"ours cold starts: {', '.join(f'{s * 1000:.0f}' for s in cold['runs_s'])} ms; in a "
        f"fresh interpreter, import emd_proxy.main {breakdown['import_s'] * 1000:.0f} ms + "
        f"create_app() {breakdown['create_app_s'] * 1000:.0f} ms"
    )
    table = Table(title="Heaviest imports of emd_proxy.main + create_app() (-X importtime)")
    table.add_column("package")
    table.add_column("cumulative ms", justify="right")
    for row in cold["heaviest_imports"]:
        table.add_row(row["package"], f"{row['cumulative_ms']:.1f}")
    console.print(table)

    table = Table(title="Issue 8 targets (ours); ours_stub: the same proxy, instant backend")
    for column in ("goal", "limit", "ours", "result", "ours_stub (info)"):
        table.add_column(column, justify="left" if column == "goal" else "right")

    def show(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    for goal in result["goals"]:
        verdict = "[green]pass[/green]" if goal["pass"] else "[red]FAIL[/red]"
        table.add_row(
            goal["description"],
            str(goal["limit"]),
            show(goal["measured"]),
            verdict,
            show(goal["measured_ours_stub"]),
        )
    console.print(table)
    console.print(
        "added p50 over the aiohttp floor (info; the official floor's client is httpx): "
        f"ours {result['ratios']['added_p50_over_floor_aiohttp']:.3f}, ours_stub "
        f"{result['ratios_ours_stub']['added_p50_over_floor_aiohttp']:.3f}"
    )
    for warning in result["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(f"total bench time {result['bench_seconds']:.0f} s")


# --- main -----------------------------------------------------------------------------
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


def main(argv: Sequence[str] | None = None) -> int:
    began = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~2 minute smoke run")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "compare.json")
    parser.add_argument(
        "--ours-log-level",
        default="INFO",
        help="POWERTOOLS_LOG_LEVEL of our proxy (default INFO: one access line per "
        "request, as deployed)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    config: dict[str, Any] = {
        "quick": quick,
        "requests_per_target": 300 if quick else 2000,
        "block": 50 if quick else 100,
        "concurrent_rounds": 1 if quick else 3,
        "concurrent_seconds": 2.5 if quick else 4.0,
        "ttft_streams_per_target": 60 if quick else 300,
        "gap_streams_per_target": 5 if quick else 25,
        "cold_start_runs": 2 if quick else 5,
        "concurrency": CONCURRENCY,
        "ours_log_level": args.ours_log_level,
        "litellm": LITELLM_REQUIREMENT,
    }
    litellm = ensure_litellm()
    work = Path(tempfile.mkdtemp(prefix="emd-bench-"))
    procs = Processes(work)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "config": config,
    }
    ok = False
    try:
        with interrupts_unwind():
            print(
                "starting direct, backend, stub, floor, floor_aiohttp, ours, ours_stub, "
                "litellm ...",
                flush=True,
            )
            fleet = start_fleet(procs, work, litellm, args.ours_log_level)
            eps = fleet.endpoints
            result["memory"] = {
                name: {"idle": round(e.server.rss_mib(), 1)}
                for name, e in eps.items()
                if e.server is not None
            }
            print("sequential ...", flush=True)
            result["sequential"] = bench_sequential(
                eps, config["requests_per_target"], config["block"]
            )
            print("concurrent ...", flush=True)
            result["concurrent"] = bench_concurrent(
                eps, config["concurrent_rounds"], config["concurrent_seconds"]
            )
            for name, e in eps.items():
                if e.server is not None:
                    result["memory"][name]["after_load"] = round(e.server.rss_mib(), 1)
            print("streaming ...", flush=True)
            result["streaming"] = bench_streaming(
                eps, config["ttft_streams_per_target"], config["gap_streams_per_target"]
            )
            # Last, with every server but ours' backend stopped: fresh interpreters
            # are timed on an otherwise idle machine (with all the servers up, idle or
            # not, the median was 700 ms against 484 ms alone).
            for name, server in fleet.servers.items():
                if name != "ours_backend":
                    procs.stop(server.proc)
            print("cold start ...", flush=True)
            result["cold_start"] = bench_cold_start(
                procs, fleet.ours_env, config["cold_start_runs"]
            )
            summarise(result, eps)
            ok = True
    finally:
        procs.stop_all()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"bench failed; the servers' logs are in {work}", file=sys.stderr)
    result["bench_seconds"] = round(time.perf_counter() - began, 1)
    result["warnings"] = warnings_for(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    render(result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; the servers were stopped", file=sys.stderr)
        sys.exit(130)
