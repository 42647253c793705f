"""Side by side in one run: what our proxy adds, next to LiteLLM's proxy and a bare
pass-through, all in front of the same instant echo model (issue 8).

    .venv/bin/python bench/compare.py [--quick] [--soak-seconds S] [--out FILE]

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
Then, on ours alone: the other API shapes over chat models (completions, responses,
messages) beside chat, RSS over a 20 s streaming soak, and `emd serve`'s shutdown.
See bench/README.md for what each number means and how it is measured.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lib import BENCH_DIR
from lib.fleet import LITELLM_REQUIREMENT, ensure_litellm
from lib.goals import warnings_for
from lib.load import CONCURRENCY
from lib.machine import machine
from lib.processes import Processes, interrupts_unwind
from lib.report import publish, render_compare
from lib.scenarios import run_all


def main(argv: Sequence[str] | None = None) -> int:
    began = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~1-2 minute smoke run")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "compare.json")
    parser.add_argument(
        "--ours-log-level",
        default="INFO",
        help="POWERTOOLS_LOG_LEVEL of our proxy (default INFO: one access line per "
        "request, as deployed)",
    )
    parser.add_argument(
        "--soak-seconds",
        type=float,
        help="the memory soak's length (default 20; 0 = skip, the default with --quick)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    soak_seconds = args.soak_seconds if args.soak_seconds is not None else 0 if quick else 20
    config: dict[str, Any] = {
        "quick": quick,
        "requests_per_target": 300 if quick else 2000,
        "block": 50 if quick else 100,
        "concurrent_rounds": 1 if quick else 3,
        "concurrent_seconds": 2.5 if quick else 4.0,
        "ttft_streams_per_target": 60 if quick else 300,
        "gap_streams_per_target": 5 if quick else 25,
        "cold_start_runs": 2 if quick else 5,
        "shape_requests": 150 if quick else 1000,
        "shape_ttft_streams": 48 if quick else 200,
        "soak_seconds": soak_seconds,
        "shutdown_runs": 1 if quick else 3,
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
            run_all(procs, work, litellm, config, result)
            ok = True
    finally:
        procs.stop_all()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"bench failed; the servers' logs are in {work}", file=sys.stderr)
    result["bench_seconds"] = round(time.perf_counter() - began, 1)
    result["warnings"] = warnings_for(result)
    publish(result, args.out, render_compare)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; the servers were stopped", file=sys.stderr)
        sys.exit(130)
