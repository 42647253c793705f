"""compare.py's servers, each its own process on 127.0.0.1, and how to call each
target (see the table in bench/README.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import BENCH_DIR, HOST
from .chat import chat_body, json_headers
from .load import Target
from .processes import Processes, Server, free_port, tail, wait_until_ok

API_KEY = "sk-bench-ours"
LITELLM_KEY = "sk-bench-litellm"  # LiteLLM's master key (general_settings.master_key)
LITELLM_REQUIREMENT = "litellm[proxy]==1.108.7"
LITELLM_VENV = BENCH_DIR / ".venvs" / "litellm"
OURS_MODEL = "echo/local"
ECHO_ENDPOINT = "emd-echo-local"
TARGETS_PY = str(BENCH_DIR / "targets.py")


def python_env(**extra: str) -> dict[str, str]:
    """This environment without the proxy's own settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMD_", "POWERTOOLS_"))}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


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


def start_target(procs: Processes, kind: str, *extra: str, name: str = "") -> Server:
    """direct, floor or stub from targets.py (`name`, for its log, defaults to kind)."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    argv = [sys.executable, TARGETS_PY, kind, "--port", str(port), *extra]
    path = "/v1/chat/completions" if kind != "stub" else f"/endpoints/{ECHO_ENDPOINT}/invocations"
    return procs.start(
        name or kind,
        argv,
        python_env(),
        url=url,
        ready=lambda c: c.post(url + path, content=chat_body(None)),
    )


def start_backend(procs: Processes, work: Path) -> tuple[Server, list[dict[str, Any]]]:
    """Emulator + echo container; returns them and the registry that names them."""
    ready_file = work / "backend.json"
    argv = [sys.executable, TARGETS_PY, "backend", "--ready-file", str(ready_file)]
    began = time.perf_counter()
    proc, log = procs.spawn("ours_backend", argv, python_env())
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


def start_ours(
    procs: Processes, name: str, env: dict[str, str], python: Sequence[str] = (sys.executable,)
) -> Server:
    """lambdas/run.sh's command line (the Lambda's own), on a local port, run by
    `python` (this venv's interpreter unless told)."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    argv = [
        *python,
        "-m",
        "emd_proxy.serve",
        "--factory",
        "emd_proxy.main:create_app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-access-log",
    ]
    chat = f"{url}/v1/chat/completions"
    return procs.start(
        name,
        argv,
        env,
        url=url,
        ready=lambda c: c.post(chat, content=chat_body(OURS_MODEL), headers=json_headers(API_KEY)),
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
    return procs.start(
        "litellm",
        argv,
        env,
        url=url,
        ready=lambda c: c.post(chat, content=chat_body("echo"), headers=json_headers(LITELLM_KEY)),
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

    def request(self, *, stream: bool = False, **extra: Any) -> tuple[str, bytes]:
        """The URL and chat body of one call (`extra`: more body fields)."""
        url = self.stream_url if stream else self.url
        return url, chat_body(self.model, stream=stream, **extra)

    def target(self, *, name: str = "", stream: bool = False, **extra: Any) -> Target:
        url, body = self.request(stream=stream, **extra)
        return Target.open(name or self.name, url, body, self.headers)


def sagemaker_endpoint(name: str, base: str) -> Endpoint:
    """A SageMaker-runtime endpoint called directly; it takes unsigned calls. The body
    is the client's without `model`, as the proxy sends it."""
    invoke = f"{base}/endpoints/{ECHO_ENDPOINT}"
    return Endpoint(
        name,
        f"{invoke}/invocations",
        f"{invoke}/invocations-response-stream",
        json_headers(),
        None,
        sse=False,
    )


def proxy_endpoint(
    name: str, server: Server, key: str | None, model: str | None, backend: str
) -> Endpoint:
    chat = f"{server.url}/v1/chat/completions"
    return Endpoint(name, chat, chat, json_headers(key), model, backend, server)


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
    direct = f"{s['direct'].url}/v1/chat/completions"
    found = [
        Endpoint("direct", direct, direct, json_headers(), None),
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
