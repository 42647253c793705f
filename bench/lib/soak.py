"""Memory under sustained streaming load: the gateway process's RSS before and after
50 clients stream echo/local for a while (the integration suite's old load test, which
asserted RSS growth < 50 MB; tests no longer assert on what the allocator does, the
bench reports it).

The clients are bare keep-alive HTTP/1.1 connections on one uvloop (lib.load's), so
the load generator costs little of the 2 cores the proxy and its backend need. Every
stream is checked: 200, every event parsed, ending with [DONE], and the exact text of
its own request (each stream asks for different words)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

from .chat import chat_body
from .fleet import OURS_MODEL, Endpoint
from .load import raw_request, read_response
from .processes import Server
from .shapes import chat_text

CLIENTS = 50
WARM_UP_SECONDS = 3.0
# Pools (the proxy's upstream connections, its worker threads) settle this long after
# the clients stop, before RSS is read.
SETTLE_SECONDS = 1.0
GROWTH_LIMIT_MIB = 50.0  # the old test's bound ("50 MB", computed as kB / 1024)
# Eight words 2 ms apart, as in the old test: short streams, many of them, that still
# come as separate chunks.
WORDS = "load test stream number {n} of client {c}"
DELAY_MS = 2
READ_TIMEOUT_S = 30.0  # one stream; only a guard against a hang


@dataclass
class Tally:
    streams: int = 0
    failures: int = 0
    first_failure: str = ""
    seconds: float = 0.0
    rss_peak_mib: float = 0.0
    backend_rss_peak_mib: float = 0.0

    def fail(self, what: str) -> None:
        self.failures += 1
        self.first_failure = self.first_failure or what


def stream_problem(status: int, body: bytes, words: str) -> str | None:
    """What is wrong with one streamed answer, if anything."""
    if status != 200:
        return f"HTTP {status}: {body[:200]!r}"
    try:
        text = chat_text(body, True)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"{exc!r}: {body[-200:]!r}"
    return None if text == words else f"answer {text!r}, not {words!r}"


async def one_client(url: str, headers: dict[str, str], c: int, stop_at: float, t: Tally) -> None:
    """One client: a keep-alive connection, one stream after another until `stop_at`;
    a new connection after a failure or a `Connection: close`."""
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    n = 0
    try:
        while time.perf_counter() < stop_at:
            n += 1
            words = WORDS.format(n=n, c=c)
            body = chat_body(OURS_MODEL, stream=True, content=words, echo_delay_ms=DELAY_MS)
            host, port, request = raw_request(url, body, headers)
            keep = False
            try:
                if connection is None:
                    connection = await asyncio.open_connection(host, port)
                reader, writer = connection
                writer.write(request)
                status, answer, keep = await asyncio.wait_for(read_response(reader), READ_TIMEOUT_S)
                problem = stream_problem(status, answer, words)
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.01)  # a refused connection must not spin the loop
            t.streams += 1
            if problem:
                t.fail(f"client {c} stream {n}: {problem}")
            if (problem or not keep) and connection is not None:
                connection[1].close()
                connection = None
    finally:
        if connection is not None:
            connection[1].close()


def load(url: str, headers: dict[str, str], seconds: float, servers: list[Server]) -> Tally:
    """CLIENTS clients for `seconds`, sampling the RSS of `servers` (proxy, backend)
    every 100 ms meanwhile."""
    import uvloop

    tally = Tally()
    stop_sampling = threading.Event()
    proxy, backend = servers

    def sample() -> None:
        while not stop_sampling.wait(0.1):
            tally.rss_peak_mib = max(tally.rss_peak_mib, proxy.rss_mib())
            tally.backend_rss_peak_mib = max(tally.backend_rss_peak_mib, backend.rss_mib())

    async def main() -> None:
        began = time.perf_counter()
        stop_at = began + seconds
        await asyncio.gather(*(one_client(url, headers, c, stop_at, tally) for c in range(CLIENTS)))
        tally.seconds = time.perf_counter() - began

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        uvloop.run(main())
    finally:
        stop_sampling.set()
        sampler.join()
    return tally


def settled_rss(servers: list[Server]) -> list[float]:
    time.sleep(SETTLE_SECONDS)
    return [round(s.rss_mib(), 1) for s in servers]


def bench_soak(eps: dict[str, Endpoint], backend_server: Server, seconds: float) -> dict[str, Any]:
    """A warm-up at the same concurrency first (the proxy's pools and worker threads
    grow to their working size, as in the old test), then the baseline, the load, and
    RSS again once it settled. Growth = after - before; the peak is sampled.
    `backend_server`: the emulator + echo container's process (info)."""
    ours, backend = eps["ours"], eps["ours_backend"]
    assert ours.server is not None
    servers = [ours.server, backend_server]
    warm = load(ours.url, ours.headers, WARM_UP_SECONDS, servers)
    before = settled_rss(servers)
    tally = load(ours.url, ours.headers, seconds, servers)
    after = settled_rss(servers)
    growth = round(after[0] - before[0], 1)
    failures = warm.failures + tally.failures
    return {
        "target": "ours",
        "clients": CLIENTS,
        "seconds": round(tally.seconds, 1),
        "warm_up_seconds": WARM_UP_SECONDS,
        "streams": tally.streams,
        "streams_per_s": round(tally.streams / tally.seconds, 1) if tally.seconds else 0.0,
        "failures": failures,
        "first_failure": warm.first_failure or tally.first_failure or None,
        "rss_mib": {"before": before[0], "peak": round(tally.rss_peak_mib, 1), "after": after[0]},
        "growth_mib": growth,
        # Info: the emulator + echo container behind it (one process, not the gateway).
        "backend": backend.name,
        "backend_rss_mib": {
            "before": before[1],
            "peak": round(tally.backend_rss_peak_mib, 1),
            "after": after[1],
        },
        "backend_growth_mib": round(after[1] - before[1], 1),
        "limit_mib": GROWTH_LIMIT_MIB,
        "pass": growth < GROWTH_LIMIT_MIB and failures == 0 and tally.streams > CLIENTS,
    }
