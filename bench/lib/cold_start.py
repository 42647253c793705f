"""Start-up of our proxy: fresh interpreters on the Lambda's command line, and where
a fresh interpreter's import time goes."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
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


def bench_cold_start(procs: Processes, env: dict[str, str], runs: int) -> dict[str, Any]:
    """Each run timed from process start to its first successful chat completion
    (through the emulator), in the chat Lambda's own configuration: every deployed
    Lambda mounts one family (EMD_FAMILIES, infra/constructs/proxy_function.py), so it
    imports that family's schemas only. `all_families` times the process that mounts
    every family (`emd serve`'s), for information."""
    # Bytecode for our own modules, as the Lambda bundle carries it (infra/bundling.py).
    # Without it (a fresh clone, or PYTHONDONTWRITEBYTECODE=1, which never writes it)
    # every fresh interpreter compiles emd_proxy first: about 100 ms more.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "lambdas" / "emd_proxy")],
        check=True,
    )
    chat = {**env, "EMD_FAMILIES": "chat"}
    seconds: list[float] = []
    every: list[float] = []
    rss: list[float] = []
    for i in range(runs):  # alternated, so machine noise hits both alike
        server = start_ours(procs, f"cold-{i}", chat)
        seconds.append(server.started_s)
        rss.append(server.rss_mib())
        procs.stop(server.proc)
        server = start_ours(procs, f"cold-all-{i}", env)
        every.append(server.started_s)
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
        "breakdown_s": json.loads(
            run_python(["-c", _BREAKDOWN], chat).stdout.strip().splitlines()[-1]
        ),
        "heaviest_imports": heaviest_imports(chat),
    }


def run_python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )


def heaviest_imports(env: dict[str, str], top: int = 12) -> list[dict[str, Any]]:
    """`python -X importtime` of `emd_proxy.main` and create_app(), by package: the
    cumulative time of each place where the import of a package started (so a
    package's row includes what it imports in turn, e.g. boto3 includes botocore)."""
    script = "import emd_proxy.main; emd_proxy.main.create_app()"
    run = run_python(["-X", "importtime", "-c", script], env)
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
