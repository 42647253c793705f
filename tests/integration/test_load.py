"""A bounded load test: 50 concurrent streaming clients against echo/local, each
streaming EMD_LOAD_STREAMS answers one after the other (default 8: 400 streams; more
for a longer soak). Zero failed requests, every stream complete and ending with
`[DONE]`, and afterwards no leaked upstream stream, worker thread, file descriptor or
live object.

The gateway runs in this process (the session fixture), so its descriptors, threads
and objects are this process's: /proc/self and the garbage collector's. Its worker
pool keeps idle threads and its clients keep idle pooled connections, so the baseline
is taken after a warm-up with the same load, and what is checked is that the load
leaves nothing beyond it. How much memory the process holds is a measurement for
bench/, not a test: it depends on the allocator, not only on what is still alive."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from emd.local.gateway import LocalGateway

from .conftest import ECHO, KEY
from .reliability import assert_healthy

STREAMS = int(os.environ.get("EMD_LOAD_STREAMS", "8"))
CLIENTS = 50
# Eight words, 2 ms apart: short streams that still arrive as separate chunks.
WORDS = "load test stream number {n} of client {c}"
DELAY_MS = 2
# What idle pools may differ by between two measurements (a keep-alive connection
# opened or reaped in between, a worker thread more, a bounded cache filling up); a
# leak grows with the requests, hundreds here, far past these.
FD_SLACK = 24
THREAD_SLACK = 8
OBJECT_SLACK = 50
# Whose objects are counted: the proxy and the libraries that hold its requests,
# connections and tasks (not the test's own httpx clients).
SERVER_MODULES = ("emd_proxy", "aiohttp", "starlette", "fastapi", "uvicorn", "asyncio", "_asyncio")


@dataclass
class Tally:
    streams: int = 0
    failures: list[str] = field(default_factory=list)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def live_objects() -> Counter[str]:
    """Live objects of the server's types, by type, after a full collection."""
    gc.collect()
    counts: Counter[str] = Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        module = kind.__dict__.get("__module__")  # a metaclass may shadow the plain lookup
        if isinstance(module, str) and module.startswith(SERVER_MODULES):
            counts[f"{module}.{kind.__qualname__}"] += 1
    return counts


def busy_workers() -> list[str]:
    """The proxy's worker threads (`emd-io`) that are inside a call or a stream rather
    than waiting for work."""
    frames = sys._current_frames()
    busy = []
    for thread in threading.enumerate():
        frame = frames.get(thread.ident or -1)
        if not thread.name.startswith("emd-io") or frame is None:
            continue
        while frame is not None:
            if any(part in frame.f_code.co_filename for part in ("emd_proxy", "botocore")):
                busy.append(f"{thread.name}: {frame.f_code.co_filename}:{frame.f_lineno}")
                break
            frame = frame.f_back
    return busy


def poll(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Whether `condition` became true within `timeout` (checked every 50 ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def one_client(http: httpx.AsyncClient, c: int, streams: int, tally: Tally) -> None:
    """One client, streaming `streams` answers one after the other."""
    for n in range(1, streams + 1):
        words = WORDS.format(n=n, c=c)
        body = {
            "model": ECHO,
            "messages": [{"role": "user", "content": words}],
            "stream": True,
            "echo_delay_ms": DELAY_MS,
        }
        try:
            async with http.stream("POST", "/chat/completions", json=body) as response:
                text = (await response.aread()).decode()
            problem = check_stream(response.status_code, text, words)
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        tally.streams += 1
        if problem:
            tally.failures.append(f"client {c} stream {n}: {problem}")


def check_stream(status: int, text: str, words: str) -> str | None:
    """What is wrong with one streamed answer, if anything."""
    import json

    if status != 200:
        return f"HTTP {status}: {text[:200]}"
    events = [e for e in text.split("\n\n") if e]
    if not events or events[-1] != "data: [DONE]":
        return f"does not end with [DONE]: {text[-200:]!r}"
    content = ""
    for event in events[:-1]:
        if not event.startswith("data: "):
            continue  # a keep-alive comment
        chunk = json.loads(event[6:])
        if "error" in chunk:
            return f"error event: {chunk['error']}"
        for choice in chunk["choices"]:
            content += choice["delta"].get("content") or ""
    return None if content == words else f"answer {content!r} instead of {words!r}"


async def load(clients: list[httpx.AsyncClient], streams: int) -> Tally:
    tally = Tally()
    await asyncio.gather(*(one_client(h, c, streams, tally) for c, h in enumerate(clients)))
    return tally


@dataclass
class Usage:
    fds: int
    threads: int
    objects: Counter[str]


def settled(gateway: LocalGateway) -> Usage:
    """Waits until no stream is open upstream and no worker is busy, then measures."""
    emulator = gateway.stack.emulator
    assert emulator is not None
    assert poll(lambda: emulator.stats.streams_open == 0), emulator.stats
    assert poll(lambda: not busy_workers()), busy_workers()
    return Usage(fd_count(), threading.active_count(), live_objects())


def test_fifty_streaming_clients_fail_nothing_and_leak_nothing(gateway: LocalGateway) -> None:
    async def main() -> tuple[Tally, Usage, Usage]:
        # One client (one connection pool) each: a single shared httpx client would be
        # the bottleneck. Made once, so the baseline already holds their connections.
        clients = [
            httpx.AsyncClient(
                base_url=gateway.base_url,
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=httpx.Timeout(60.0),
            )
            for _ in range(CLIENTS)
        ]
        try:
            # The same load first: the pools grow to what this load needs (a single
            # round leaves fewer streams overlapping than eight do).
            warm = await load(clients, STREAMS)
            assert not warm.failures, warm.failures[:5]
            before = await asyncio.to_thread(settled, gateway)
            tally = await load(clients, STREAMS)
            after = await asyncio.to_thread(settled, gateway)
        finally:
            for client in clients:
                await client.aclose()
        return tally, before, after

    tally, before, after = asyncio.run(main())

    assert tally.streams == CLIENTS * STREAMS
    assert not tally.failures, f"{len(tally.failures)} of {tally.streams}: {tally.failures[:5]}"
    # No upstream stream left open and no worker stuck in one (checked by `settled`);
    # descriptors, threads and the server's objects back where they were.
    assert after.fds <= before.fds + FD_SLACK, (before.fds, after.fds)
    assert after.threads <= before.threads + THREAD_SLACK, (
        before.threads,
        after.threads,
        sorted(t.name for t in threading.enumerate()),
    )
    grown = {
        kind: (before.objects[kind], count)
        for kind, count in after.objects.items()
        if count > before.objects[kind] + OBJECT_SLACK
    }
    assert not grown, f"live objects grew over {tally.streams} streams: {grown}"
    # Once the clients hung up, the server let go of their connections too.
    assert poll(lambda: fd_count() <= before.fds + FD_SLACK), (before.fds, fd_count())
    assert_healthy(gateway)
