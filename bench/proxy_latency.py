"""Latency of the local gateway: what the proxy adds on top of the SageMaker-runtime
emulator, and how fast SmolLM2 answers through it.

    .venv/bin/python bench/proxy_latency.py [--requests N] [--out bench/results/proxy_latency.json]

Everything (containers, emulator, proxy and this client) runs in this one process, in
background threads started by `emd.local.gateway.start_local_gateway`; see bench/README.md
for what each number means.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Before emd_proxy is imported: Powertools reads the level when the Logger is created,
# and the per-request INFO line would flood stdout and slow the proxy down.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

if TYPE_CHECKING:
    import httpx

    from emd.local.gateway import LocalGateway

SMOLLM2 = "SmolLM2-135M-Instruct/local"
ECHO = "echo/local"
API_KEY = "bench-key"
SMOLLM2_PROMPT = "Write a short story about a robot who learns to paint."
SEED = 1234
ECHO_MESSAGE = "The quick brown fox jumps over the lazy dog."


# --- small helpers ------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(values_s: Sequence[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "n": len(ms),
        "min": round(min(ms), 3),
        "p50": round(percentile(ms, 50), 3),
        "p90": round(percentile(ms, 90), 3),
        "p95": round(percentile(ms, 95), 3),
        "p99": round(percentile(ms, 99), 3),
        "max": round(max(ms), 3),
        "mean": round(sum(ms) / len(ms), 3),
    }


def process_age_seconds() -> float | None:
    """Seconds since this process was created (Linux: /proc), None elsewhere."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def machine() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    cpu_model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }


# --- 1. start-up ----------------------------------------------------------------------
@dataclass
class Startup:
    import_s: float
    gateway_start_s: float
    process_start_to_ready_s: float | None
    script_start_to_ready_s: float
    load_seconds: dict[str, float] = field(default_factory=dict)


def start_gateway(script_started: float, age_at_script_start: float | None) -> tuple[Any, Startup]:
    import httpx

    imported = time.perf_counter()
    from emd.local.gateway import start_local_gateway
    from emd_proxy.settings import Settings

    import_s = time.perf_counter() - imported
    began = time.perf_counter()
    gw = start_local_gateway([SMOLLM2, ECHO], keys={"default": API_KEY}, settings=Settings())
    try:
        # Ready = the proxy answers an authenticated /v1 call (it already listens).
        response = httpx.get(
            f"{gw.base_url}/models", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
        )
        response.raise_for_status()
    except BaseException:
        gw.stop()
        raise
    ready = time.perf_counter()
    startup = Startup(
        import_s=import_s,
        gateway_start_s=ready - began,
        process_start_to_ready_s=(
            age_at_script_start + (ready - script_started)
            if age_at_script_start is not None
            else None
        ),
        script_start_to_ready_s=ready - script_started,
        load_seconds={m.model.id: m.load_seconds for m in gw.stack.loaded},
    )
    return gw, startup


# --- 2. SmolLM2 streaming through the proxy -----------------------------------------
def bench_smollm2(gw: LocalGateway, requests: int, max_tokens: int) -> dict[str, Any]:
    from openai import OpenAI

    client = OpenAI(base_url=gw.base_url, api_key=API_KEY, max_retries=0, timeout=120)
    ttfts: list[float] = []
    rates: list[float] = []
    e2e: list[float] = []
    tokens: list[int] = []
    try:
        for i in range(requests + 1):  # the first one warms up llama.cpp and the path
            sent = time.perf_counter()
            first = last = None
            usage_tokens = None
            stream = client.chat.completions.create(
                model=SMOLLM2,
                messages=[{"role": "user", "content": SMOLLM2_PROMPT}],
                max_tokens=max_tokens,
                temperature=0,
                seed=SEED,
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in stream:
                now = time.perf_counter()
                if chunk.choices and chunk.choices[0].delta.content:
                    if first is None:
                        first = now
                    last = now
                if chunk.usage is not None:
                    usage_tokens = chunk.usage.completion_tokens
            done = time.perf_counter()
            if first is None or last is None or not usage_tokens:
                raise RuntimeError(f"SmolLM2 stream had no content or no usage (request {i})")
            if i == 0:
                continue
            ttfts.append(first - sent)
            e2e.append(done - sent)
            tokens.append(usage_tokens)
            if last > first:
                rates.append(usage_tokens / (last - first))
    finally:
        client.close()
    return {
        "requests": requests,
        "max_tokens": max_tokens,
        "completion_tokens": sorted(set(tokens)),
        "ttft_ms": summary_ms(ttfts),
        "ttft_ms_p50": round(percentile(ttfts, 50) * 1000, 2),
        "ttft_ms_p90": round(percentile(ttfts, 90) * 1000, 2),
        "tokens_per_s_p50": round(percentile(rates, 50), 1),
        "tokens_per_s_p90": round(percentile(rates, 90), 1),
        "request_ms": summary_ms(e2e),
    }


# --- 3 and 4. proxy vs emulator on echo/local ---------------------------------------
@dataclass
class Target:
    name: str
    client: httpx.Client
    url: str
    body: bytes
    headers: dict[str, str]


def echo_targets(gw: LocalGateway, stream: bool) -> tuple[Target, Target]:
    """Same chat body to both; the direct call gets it on the emulator's invoke URL (the
    emulator takes unsigned calls) without `model`, as the proxy sends it (the
    container knows only its served name, and refuses others as vLLM does)."""
    import httpx

    endpoint = gw.registry.resolve(ECHO).endpoint
    body: dict[str, Any] = {
        "model": ECHO,
        "messages": [{"role": "user", "content": ECHO_MESSAGE}],
        "max_tokens": 16,
    }
    if stream:
        body["stream"] = True
    raw = json.dumps(body).encode()
    json_type = {"Content-Type": "application/json"}
    timeout = httpx.Timeout(30.0)
    proxy = Target(
        "proxy",
        httpx.Client(timeout=timeout),
        f"{gw.base_url}/chat/completions",
        raw,
        {**json_type, "Authorization": f"Bearer {API_KEY}"},
    )
    operation = "invocations-response-stream" if stream else "invocations"
    direct = Target(
        "direct",
        httpx.Client(timeout=timeout),
        f"{gw.stack.emulator_url}/endpoints/{endpoint}/{operation}",
        json.dumps({k: v for k, v in body.items() if k != "model"}).encode(),
        json_type,
    )
    return proxy, direct


def call_once(target: Target) -> float:
    """Non-streaming: seconds from send to the whole body read."""
    started = time.perf_counter()
    response = target.client.post(target.url, content=target.body, headers=target.headers)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{target.name}: HTTP {response.status_code}: {response.text[:300]}")
    return elapsed


def first_bytes_once(target: Target) -> float:
    """Streaming: seconds from send to the first raw body bytes; then drains the rest so
    the connection goes back to the pool."""
    started = time.perf_counter()
    elapsed = None
    with target.client.stream(
        "POST", target.url, content=target.body, headers=target.headers
    ) as response:
        if response.status_code != 200:
            response.read()
            raise RuntimeError(f"{target.name}: HTTP {response.status_code}: {response.text}")
        for chunk in response.iter_raw():
            if chunk and elapsed is None:
                elapsed = time.perf_counter() - started
    if elapsed is None:
        raise RuntimeError(f"{target.name}: empty stream")
    return elapsed


def interleaved(
    targets: Sequence[Target],
    measure: Callable[[Target], float],
    *,
    per_target: int,
    block: int,
    warmup: int,
    budget_s: float,
) -> tuple[dict[str, list[float]], int]:
    """Blocks of `block` calls, target order A B C C B A A B C ..., so drift and noise
    hit every target alike. Runs fewer blocks when the warm-up says `per_target` would
    not fit in `budget_s`. Returns the samples and the number of calls per target
    actually made."""
    round_s = 0.0  # one call to each target, from the warm-up's last three quarters
    for target in targets:
        warm = [measure(target) for _ in range(warmup)]
        tail = warm[len(warm) // 4 :]
        round_s += sum(tail) / max(1, len(tail))
    blocks = max(1, per_target // block)
    if round_s > 0:
        blocks = max(1, min(blocks, int(budget_s / (round_s * block))))
    samples: dict[str, list[float]] = {t.name: [] for t in targets}
    gc.collect()
    gc.disable()  # a collection landing in one block would skew it; re-enabled below
    try:
        for i in range(blocks):
            order = list(targets) if i % 2 == 0 else list(targets)[::-1]
            for target in order:
                out = samples[target.name]
                for _ in range(block):
                    out.append(measure(target))
            gc.collect()
    finally:
        gc.enable()
    return samples, blocks * block


def bench_added_latency(
    gw: LocalGateway, per_target: int, block: int, budget_s: float
) -> dict[str, Any]:
    targets = echo_targets(gw, stream=False)
    try:
        samples, ran = interleaved(
            targets, call_once, per_target=per_target, block=block, warmup=100, budget_s=budget_s
        )
    finally:
        for t in targets:
            t.client.close()
    proxy, direct = summary_ms(samples["proxy"]), summary_ms(samples["direct"])
    added = {k: round(proxy[k] - direct[k], 3) for k in ("p50", "p95", "p99", "mean")}
    return {
        "proxy_ms": proxy,
        "direct_ms": direct,
        "added_latency_ms": added,
        "block": block,
        "requests_per_target_asked": per_target,
        "requests_per_target_run": ran,
    }


def bench_stream_ttfb(
    gw: LocalGateway, per_target: int, block: int, budget_s: float
) -> dict[str, Any]:
    targets = echo_targets(gw, stream=True)
    try:
        samples, ran = interleaved(
            targets,
            first_bytes_once,
            per_target=per_target,
            block=block,
            warmup=30,
            budget_s=budget_s,
        )
    finally:
        for t in targets:
            t.client.close()
    proxy, direct = summary_ms(samples["proxy"]), summary_ms(samples["direct"])
    return {
        "stream_ttfb_proxy_ms": proxy,
        "stream_ttfb_direct_ms": direct,
        "stream_ttfb_added_ms_p50": round(proxy["p50"] - direct["p50"], 3),
        "stream_ttfb_added_ms_p95": round(proxy["p95"] - direct["p95"], 3),
        "stream_requests_per_target_run": ran,
    }


def warnings_for(result: dict[str, Any]) -> list[str]:
    found = []
    if result["requests_per_target_run"] < result["requests_per_target_asked"]:
        found.append(
            f"non-streaming: ran {result['requests_per_target_run']} requests per target, "
            f"not {result['requests_per_target_asked']}, to stay within the time budget"
        )
    if result["direct_ms"]["p50"] > 30:
        found.append(
            "direct p50 is ~40 ms for an instant model: the delayed-ACK stall of a server "
            "socket without TCP_NODELAY (see bench/README.md); the numbers measure that stall"
        )
    return found


# --- output ---------------------------------------------------------------------------
def render(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    m = result["machine"]
    console.print(
        f"[bold]proxy_latency[/bold]  {result['date']}\n"
        f"{m['platform']} | {m['cpu_model']} | CPUs: {m['cpu_count']} "
        f"(usable {m['cpus_usable']}) | Python {m['python']}"
    )

    s = result["startup"]
    sm = result["smollm2"]
    table = Table(title="Start-up and SmolLM2-135M (llama.cpp) through the proxy")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("SmolLM2 model load", f"{sm['load_seconds']:.3f} s")
    if s["process_start_to_ready_s"] is not None:
        table.add_row("process start -> gateway ready", f"{s['process_start_to_ready_s']:.2f} s")
    table.add_row("  of which start_local_gateway()", f"{s['gateway_start_s']:.2f} s")
    table.add_row("  of which importing emd / emd_proxy", f"{s['import_s']:.2f} s")
    table.add_row(
        f"TTFT p50 / p90 ({sm['requests']} streams, max_tokens={sm['max_tokens']})",
        f"{sm['ttft_ms_p50']:.1f} / {sm['ttft_ms_p90']:.1f} ms",
    )
    table.add_row(
        "generation tokens/s p50 / p90",
        f"{sm['tokens_per_s_p50']:.1f} / {sm['tokens_per_s_p90']:.1f}",
    )
    table.add_row("completion tokens per request", ", ".join(map(str, sm["completion_tokens"])))
    table.add_row("whole request p50", f"{sm['request_ms']['p50']:.0f} ms")
    console.print(table)

    table = Table(
        title=(
            f"echo/local non-streaming, sequential: proxy vs emulator direct "
            f"({result['proxy_ms']['n']} requests each, blocks of {result['block']})"
        )
    )
    table.add_column("ms")
    for q in ("min", "p50", "p95", "p99", "max", "mean"):
        table.add_column(q, justify="right")
    for name, row in (("proxy", result["proxy_ms"]), ("direct", result["direct_ms"])):
        table.add_row(name, *(f"{row[q]:.3f}" for q in ("min", "p50", "p95", "p99", "max", "mean")))
    added = result["added_latency_ms"]
    table.add_row(
        "[bold]added[/bold]", "", *(f"[bold]{added[q]:.3f}[/bold]" for q in ("p50", "p95", "p99")),
        "", f"[bold]{added['mean']:.3f}[/bold]",
    )  # fmt: skip
    console.print(table)

    table = Table(
        title=(
            f"echo/local streaming, time to first body bytes "
            f"({result['stream_ttfb_proxy_ms']['n']} requests each)"
        )
    )
    table.add_column("ms")
    for q in ("p50", "p95", "p99"):
        table.add_column(q, justify="right")
    for name, key in (("proxy", "stream_ttfb_proxy_ms"), ("direct", "stream_ttfb_direct_ms")):
        table.add_row(name, *(f"{result[key][q]:.3f}" for q in ("p50", "p95", "p99")))
    table.add_row(
        "[bold]added[/bold]",
        f"[bold]{result['stream_ttfb_added_ms_p50']:.3f}[/bold]",
        f"[bold]{result['stream_ttfb_added_ms_p95']:.3f}[/bold]",
        "",
    )
    console.print(table)
    for warning in result["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(f"total bench time {result['bench_seconds']:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    script_started = time.perf_counter()
    age_at_start = process_age_seconds()
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
    args = parser.parse_args(argv)

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
        "startup": {
            "process_start_to_ready_s": (
                round(startup.process_start_to_ready_s, 3)
                if startup.process_start_to_ready_s is not None
                else None
            ),
            "script_start_to_ready_s": round(startup.script_start_to_ready_s, 3),
            "gateway_start_s": round(startup.gateway_start_s, 3),
            "import_s": round(startup.import_s, 3),
            "load_seconds": {k: round(v, 3) for k, v in startup.load_seconds.items()},
        },
        "smollm2": {"load_seconds": round(startup.load_seconds[SMOLLM2], 3), **smollm2},
        **latency,
        **ttfb,
        "bench_seconds": round(time.perf_counter() - script_started, 1),
    }
    result["warnings"] = warnings_for(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    render(result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
