"""The clients. Sequential: one keep-alive httpx client per target, the targets
called in interleaved blocks. Concurrent: bare HTTP/1.1 clients on one uvloop, so
the load generator (on the same 2 cores) costs far less CPU than what it measures;
an httpx client tops out around 500 requests/s."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import httpx

from .chat import FIRST_TOKEN

CONCURRENCY = 32  # clients of a concurrent run


@dataclass
class Target:
    name: str
    client: httpx.Client
    url: str
    body: bytes
    headers: dict[str, str]

    @classmethod
    def open(cls, name: str, url: str, body: bytes, headers: dict[str, str]) -> Target:
        return cls(name, httpx.Client(timeout=httpx.Timeout(30.0)), url, body, headers)


@contextlib.contextmanager
def closing(targets: Sequence[Target]) -> Iterator[Sequence[Target]]:
    try:
        yield targets
    finally:
        for target in targets:
            target.client.close()


def call_once(target: Target) -> float:
    """Non-streaming: seconds from send to the whole body read (an event stream too)."""
    started = time.perf_counter()
    response = target.client.post(target.url, content=target.body, headers=target.headers)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{target.name}: HTTP {response.status_code}: {response.text[:300]}")
    return elapsed


@contextlib.contextmanager
def open_stream(target: Target) -> Iterator[httpx.Response]:
    with target.client.stream(
        "POST", target.url, content=target.body, headers=target.headers
    ) as response:
        if response.status_code != 200:
            response.read()
            raise RuntimeError(f"{target.name}: HTTP {response.status_code}: {response.text}")
        yield response


def first_bytes_once(target: Target, marker: bytes = b"") -> float:
    """Streaming: seconds from send to the first raw body bytes holding `marker` (any
    bytes when empty); then drains the rest so the connection goes back to the pool."""
    started = time.perf_counter()
    elapsed = None
    seen = b""
    with open_stream(target) as response:
        for chunk in response.iter_raw():
            if elapsed is None:
                seen += chunk
                if seen and marker in seen:
                    elapsed = time.perf_counter() - started
    if elapsed is None:
        raise RuntimeError(f"{target.name}: the stream ended without {marker or b'any bytes'!r}")
    return elapsed


def first_token_once(target: Target) -> float:
    return first_bytes_once(target, FIRST_TOKEN)


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


# --- concurrent ---------------------------------------------------------------------
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
    """One client: a keep-alive connection, one request after the other until
    `stop_at`. A 200 without the echo's first word counts as an error too."""
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
    url: str,
    body: bytes,
    headers: dict[str, str],
    seconds: float,
    rss_mib: Callable[[], float] | None,
) -> LoadResult:
    """CONCURRENCY clients for `seconds`, sampling `rss_mib` (the proxy's) meanwhile."""
    import uvloop

    raw = raw_request(url, body, headers)
    result = LoadResult()
    stop_sampling = threading.Event()

    def sample_rss() -> None:
        while rss_mib is not None and not stop_sampling.wait(0.1):
            result.rss_peak_mib = max(result.rss_peak_mib, rss_mib())

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
