"""Latency of the local gateway: what the proxy adds on top of the SageMaker-runtime
emulator, and how fast SmolLM2 answers through it.

    .venv/bin/python bench/proxy_latency.py [--requests N] [--out bench/results/proxy_latency.json]

Everything (containers, emulator, proxy and this client) runs in this one process, in
background threads started by `emd.local.gateway.start_local_gateway`; see bench/README.md
for what each number means.
"""

from __future__ import annotations

import os

# Before emd_proxy is imported: Powertools reads the level when the Logger is created,
# and the per-request INFO line would flood stdout and slow the proxy down.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lib.local_gateway import (
    SMOLLM2,
    bench_added_latency,
    bench_smollm2,
    bench_stream_ttfb,
    start_gateway,
    warnings_for,
)
from lib.machine import machine, process_age_seconds
from lib.report import publish, render_proxy_latency


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests",
        type=int,
        default=2000,
        help="non-streaming echo requests per target (proxy, direct); default 2000",
    )
    parser.add_argument("--block", type=int, default=100, help="requests per interleaved block")
    parser.add_argument(
        "--stream-requests", type=int, default=300, help="streaming echo requests per target"
    )
    parser.add_argument("--smollm2-requests", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=60.0,
        help="time cap of the non-streaming comparison (a third of it for streaming); "
        "fewer blocks run when the warm-up says the requests would not fit",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/proxy_latency.json"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    script_started = time.perf_counter()
    age_at_start = process_age_seconds()
    args = parse_args(argv)
    gw, startup = start_gateway(script_started, age_at_start)
    try:
        smollm2 = bench_smollm2(gw, args.smollm2_requests, args.max_tokens)
        latency = bench_added_latency(
            gw, args.requests, min(args.block, args.requests), args.budget_seconds
        )
        ttfb = bench_stream_ttfb(
            gw,
            args.stream_requests,
            min(max(args.stream_requests // 6, 1), 50),
            args.budget_seconds / 3,
        )
    finally:
        gw.stop()

    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "config": {
            "requests_per_target": args.requests,
            "budget_seconds": args.budget_seconds,
            "block": args.block,
            "stream_requests_per_target": args.stream_requests,
            "smollm2_requests": args.smollm2_requests,
            "max_tokens": args.max_tokens,
            "powertools_log_level": os.environ.get("POWERTOOLS_LOG_LEVEL"),
            "note": "client, proxy, emulator and containers share one process (one GIL)",
        },
        "startup": startup.to_json(),
        "smollm2": {"load_seconds": round(startup.load_seconds[SMOLLM2], 3), **smollm2},
        **latency,
        **ttfb,
        "bench_seconds": round(time.perf_counter() - script_started, 1),
    }
    result["warnings"] = warnings_for(result)
    publish(result, args.out, render_proxy_latency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
