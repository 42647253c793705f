"""compare.py's measurements, in the order a run makes them. Every one interleaves
the targets in blocks (A B C ... C B A ...) so machine noise hits all alike."""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .chat import MESSAGE
from .cold_start import bench_cold_start
from .fleet import Endpoint, start_fleet
from .goals import summarise
from .load import (
    CONCURRENCY,
    LoadResult,
    Target,
    call_once,
    closing,
    first_token_once,
    interleaved,
    open_stream,
    run_load,
)
from .processes import Processes
from .shapes import bench_shapes
from .shutdown import bench_shutdown
from .soak import CLIENTS as SOAK_CLIENTS
from .soak import bench_soak
from .stats import summary_ms

GAP_DELAY_MS = 20.0  # the backend's chunk interval for the gap measurement
# A chunk that reaches the client within this of the previous one was held back on the
# way (the backend spaces them GAP_DELAY_MS apart).
HELD_BACK_S = 0.002


def run_all(
    procs: Processes, work: Path, litellm: Path, config: dict[str, Any], result: dict[str, Any]
) -> None:
    """Starts the fleet, measures, and adds every section and the summary to `result`
    (`section_seconds`: how long each took, for keeping --quick quick)."""
    print(
        "starting direct, backend, stub, floor, floor_aiohttp, ours, ours_stub, litellm ...",
        flush=True,
    )
    took = result["section_seconds"] = {}
    with timed(took, "start"):
        fleet = start_fleet(procs, work, litellm, config["ours_log_level"])
    eps = fleet.endpoints
    result["memory"] = {name: {"idle": mib} for name, mib in proxies_rss_mib(eps).items()}
    print("sequential ...", flush=True)
    with timed(took, "sequential"):
        result["sequential"] = bench_sequential(eps, config["requests_per_target"], config["block"])
    print("concurrent ...", flush=True)
    with timed(took, "concurrent"):
        result["concurrent"] = bench_concurrent(
            eps, config["concurrent_rounds"], config["concurrent_seconds"]
        )
    for name, mib in proxies_rss_mib(eps).items():
        result["memory"][name]["after_load"] = mib
    print("streaming ...", flush=True)
    with timed(took, "streaming"):
        result["streaming"] = bench_streaming(
            eps, config["ttft_streams_per_target"], config["gap_streams_per_target"]
        )
    print("API shapes (chat, completions, responses, messages) ...", flush=True)
    with timed(took, "api_shapes"):
        result["api_shapes"] = bench_shapes(
            eps, config["shape_requests"], config["block"], config["shape_ttft_streams"]
        )
    if config["soak_seconds"] > 0:
        print(f"memory soak ({SOAK_CLIENTS} streaming clients) ...", flush=True)
        with timed(took, "memory_soak"):
            result["memory_soak"] = bench_soak(
                eps, fleet.servers["ours_backend"], config["soak_seconds"]
            )
    else:
        result["memory_soak"] = {"skipped": "quick run (--soak-seconds S runs it)"}
    # Last, with every server but ours' backend stopped: fresh interpreters are timed
    # on an otherwise idle machine (with all the servers up, idle or not, the median
    # was 700 ms against 484 ms alone).
    for name, server in fleet.servers.items():
        if name != "ours_backend":
            procs.stop(server.proc)
    print("cold start ...", flush=True)
    with timed(took, "cold_start"):
        result["cold_start"] = bench_cold_start(
            procs, fleet.ours_env, config["cold_start_runs"], work
        )
    procs.stop(fleet.servers["ours_backend"].proc)
    print("emd serve shutdown ...", flush=True)
    with timed(took, "shutdown"):
        result["shutdown"] = bench_shutdown(procs, work, config["shutdown_runs"])
    summarise(result, eps)


@contextlib.contextmanager
def timed(took: dict[str, float], section: str) -> Iterator[None]:
    began = time.perf_counter()
    try:
        yield
    finally:
        took[section] = round(time.perf_counter() - began, 1)


def proxies_rss_mib(eps: dict[str, Endpoint]) -> dict[str, float]:
    return {n: round(e.server.rss_mib(), 1) for n, e in eps.items() if e.server is not None}


def with_backend_stream(eps: dict[str, Endpoint]) -> list[tuple[str, Endpoint, bool]]:
    """(name, endpoint, streamed) of every target, plus `ours_backend_stream` (info):
    the emulator's streaming call read to the end, which is what ours makes of every
    chat request, streamed or not; it splits ours' added latency into the proxy and
    the emulator's streaming path."""
    plain = [(e.name, e, False) for e in eps.values()]
    return [*plain, ("ours_backend_stream", eps["ours_backend"], True)]


# --- 1. sequential, non-streaming -----------------------------------------------------
def bench_sequential(eps: dict[str, Endpoint], per_target: int, block: int) -> dict[str, Any]:
    plan = with_backend_stream(eps)
    targets = [e.target(name=name, stream=stream, max_tokens=16) for name, e, stream in plan]
    with closing(targets):
        for target in targets[: len(eps)]:  # every target answers the echo, not just 200
            answer = target.client.post(target.url, content=target.body, headers=target.headers)
            content = answer.json()["choices"][0]["message"]["content"]
            if content != MESSAGE:
                raise RuntimeError(f"{target.name} answered {content!r}")
        samples, ran = interleaved(
            targets, call_once, per_target=per_target, block=block, warmup=100, budget_s=300
        )
    out: dict[str, Any] = {"requests_per_target": ran, "block": block}
    for name, values in samples.items():
        out[name] = summary_ms(values)
    return out


# --- 2. concurrent, non-streaming -----------------------------------------------------
def bench_concurrent(eps: dict[str, Endpoint], rounds: int, seconds: float) -> dict[str, Any]:
    """Rounds of one block per target (order reversed every other round) so drift hits
    every target alike, after a short warm-up block each."""

    def load(e: Endpoint, url: str, body: bytes, duration: float) -> LoadResult:
        return run_load(url, body, e.headers, duration, e.server.rss_mib if e.server else None)

    plan = [
        (name, e, *e.request(stream=stream, max_tokens=16))
        for name, e, stream in with_backend_stream(eps)
    ]
    totals = {name: LoadResult() for name, *_ in plan}
    # A quarter of a block, at most 1 s: the full run's 1 s, and less of --quick's time.
    for _, e, url, body in plan:
        load(e, url, body, min(1.0, seconds / 4))
    for i in range(rounds):
        for name, e, url, body in plan if i % 2 == 0 else plan[::-1]:
            totals[name].add(load(e, url, body, seconds))
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
def bench_streaming(eps: dict[str, Endpoint], ttft_per_target: int, streams: int) -> dict[str, Any]:
    ttft, ran = time_to_first_token(eps, ttft_per_target)
    out: dict[str, Any] = {"ttft_streams_per_target": ran, "gap_delay_ms": GAP_DELAY_MS}
    for name, values in ttft.items():
        out[name] = {"ttft_ms": summary_ms(values)}
    gaps, incomplete, ran = chunk_gaps(eps, streams)
    out["gap_streams_per_target"] = ran
    for name, values in gaps.items():
        out[name]["gaps_ms"] = summary_ms(values)
        out[name]["held_back"] = sum(1 for g in values if g < HELD_BACK_S)
        out[name]["incomplete_streams"] = incomplete[name]
    return out


def time_to_first_token(
    eps: dict[str, Endpoint], per_target: int
) -> tuple[dict[str, list[float]], int]:
    """With an instant backend, so the numbers are the hops themselves."""
    with closing([e.target(stream=True) for e in eps.values()]) as targets:
        return interleaved(
            targets,
            first_token_once,
            per_target=per_target,
            block=max(1, min(50, per_target // 6)),
            warmup=20,
            budget_s=150,
        )


def chunk_gaps(
    eps: dict[str, Endpoint], streams: int
) -> tuple[dict[str, list[float]], dict[str, int], int]:
    """Inter-chunk gaps behind a backend that spaces its chunks GAP_DELAY_MS apart, on
    every target that streams SSE to its client; also how many streams were not whole."""
    sse = [e.target(stream=True, echo_delay_ms=GAP_DELAY_MS) for e in eps.values() if e.sse]
    gaps: dict[str, list[float]] = {t.name: [] for t in sse}
    incomplete = dict.fromkeys(gaps, 0)
    block = max(1, min(5, streams))
    rounds = (streams + block - 1) // block
    with closing(sse) as targets:
        for target in targets:
            content_times(target)  # warm-up
        for i in range(rounds):
            for target in targets if i % 2 == 0 else targets[::-1]:
                for _ in range(block):
                    times, done = content_times(target)
                    if not done or len(times) != len(MESSAGE.split()):
                        incomplete[target.name] += 1
                    gaps[target.name] += [b - a for a, b in itertools.pairwise(times)]
    return gaps, incomplete, block * rounds


def content_times(target: Target) -> tuple[list[float], bool]:
    """When each content chunk of one SSE stream arrived, and whether the stream ended
    with `[DONE]`."""
    times: list[float] = []
    done = False
    buffer = b""
    with open_stream(target) as response:
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
