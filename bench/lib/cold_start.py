"""Start-up of our proxy: fresh interpreters on the Lambda's command line, and where
a fresh interpreter's import time goes."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import ROOT
from .fleet import start_ours
from .processes import Processes

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


def bench_cold_start(
    procs: Processes, env: dict[str, str], runs: int, work: Path
) -> dict[str, Any]:
    """Each run timed from process start to its first successful chat completion
    (through the emulator), as the chat Lambda starts: its own code bundle
    (infra/bundling.py's, built for this machine: the pinned packages, trimmed, with
    bytecode) on PYTHONPATH, run by the bare interpreter without site-packages (-S), and
    one family mounted (EMD_FAMILIES, as infra/constructs/proxy_function.py sets it).
    `all_families` times the bundle mounting every family, for information; `venv`
    the chat family run from the project's venv (what `make serve` runs)."""
    bundle = work / "lambda-bundle"
    if not bundle.exists():
        # infra.bundling loads the CDK (a Node process): only here, and quietly.
        os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
        from infra.bundling import build_bundle, host_target

        build_bundle(bundle, registry_json="[]", target=host_target())
    lambda_python = (getattr(sys, "_base_executable", sys.executable), "-S")
    lambda_env = {**env, "PYTHONPATH": str(bundle)}
    chat = {**lambda_env, "EMD_FAMILIES": "chat"}
    # The venv run imports emd_proxy from the tree: its bytecode first, as the bundle
    # has it (without it every fresh interpreter compiles emd_proxy: ~100 ms more).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "lambdas" / "emd_proxy")],
        check=True,
    )
    seconds: list[float] = []
    every: list[float] = []
    venv: list[float] = []
    rss: list[float] = []
    for i in range(runs):  # alternated, so machine noise hits all alike
        server = start_ours(procs, f"cold-{i}", chat, lambda_python)
        seconds.append(server.started_s)
        rss.append(server.rss_mib())
        procs.stop(server.proc)
        server = start_ours(procs, f"cold-all-{i}", lambda_env, lambda_python)
        every.append(server.started_s)
        procs.stop(server.proc)
        server = start_ours(procs, f"cold-venv-{i}", {**env, "EMD_FAMILIES": "chat"})
        venv.append(server.started_s)
        procs.stop(server.proc)
    return {
        "families": "chat",
        "runs_s": [round(s, 3) for s in seconds],
        "median_s": round(statistics.median(seconds), 3),
        "min_s": round(min(seconds), 3),
        "rss_at_first_response_mib": round(statistics.median(rss), 1),
        "all_families": {
            "runs_s": [round(s, 3) for s in every],
            "median_s": round(statistics.median(every), 3),
        },
        "venv": {
            "runs_s": [round(s, 3) for s in venv],
            "median_s": round(statistics.median(venv), 3),
        },
        "breakdown_s": json.loads(
            run_python([*lambda_python[1:], "-c", _BREAKDOWN], chat, lambda_python[0])
            .stdout.strip()
            .splitlines()[-1]
        ),
        "heaviest_imports": heaviest_imports(chat, lambda_python),
    }


def run_python(
    args: list[str], env: dict[str, str], python: str = sys.executable
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )


def heaviest_imports(
    env: dict[str, str], python: Sequence[str] = (sys.executable,), top: int = 12
) -> list[dict[str, Any]]:
    """`python -X importtime` of `emd_proxy.main` and create_app(), by package: the
    cumulative time of each place where the import of a package started (so a
    package's row includes what it imports in turn, e.g. boto3 includes botocore)."""
    script = "import emd_proxy.main; emd_proxy.main.create_app()"
    run = run_python([*python[1:], "-X", "importtime", "-c", script], env, python[0])
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
