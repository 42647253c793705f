"""proxy_latency.py's measurements: the whole local gateway (SmolLM2 on llama.cpp,
echo/local, the SageMaker-runtime emulator and the proxy) in this process, started
by `emd.local.gateway.start_local_gateway`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from .chat import chat_body, json_headers
from .load import Target, call_once, closing, first_bytes_once, interleaved
from .stats import percentile, summary_ms

if TYPE_CHECKING:
    from openai import OpenAI

    from emd.local.gateway import LocalGateway

SMOLLM2 = "SmolLM2-135M-Instruct/local"
ECHO = "echo/local"
API_KEY = "bench-key"
SMOLLM2_PROMPT = "Write a short story about a robot who learns to paint."
SEED = 1234
ECHO_MESSAGE = "The quick brown fox jumps over the lazy dog."


# --- 1. start-up ----------------------------------------------------------------------
@dataclass
class Startup:
    import_s: float
    gateway_start_s: float
    process_start_to_ready_s: float | None
    script_start_to_ready_s: float
    load_seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        to_ready = self.process_start_to_ready_s
        return {
            "process_start_to_ready_s": round(to_ready, 3) if to_ready is not None else None,
            "script_start_to_ready_s": round(self.script_start_to_ready_s, 3),
            "gateway_start_s": round(self.gateway_start_s, 3),
            "import_s": round(self.import_s, 3),
            "load_seconds": {k: round(v, 3) for k, v in self.load_seconds.items()},
        }


def start_gateway(
    script_started: float, age_at_script_start: float | None
) -> tuple[LocalGateway, Startup]:
    """Ready = the proxy answers an authenticated /v1 call (it already listens)."""
    imported = time.perf_counter()
    from emd.local.gateway import start_local_gateway
    from emd_proxy.settings import Settings

    import_s = time.perf_counter() - imported
    began = time.perf_counter()
    gw = start_local_gateway([SMOLLM2, ECHO], keys={"default": API_KEY}, settings=Settings())
    try:
        response = httpx.get(f"{gw.base_url}/models", headers=json_headers(API_KEY), timeout=10)
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


# --- 2. SmolLM2 streaming through the proxy -------------------------------------------
@dataclass
class Streamed:
    ttft_s: float
    total_s: float
    tokens: int
    tokens_per_s: float | None  # None when all content came in one chunk


def bench_smollm2(gw: LocalGateway, requests: int, max_tokens: int) -> dict[str, Any]:
    from openai import OpenAI

    client = OpenAI(base_url=gw.base_url, api_key=API_KEY, max_retries=0, timeout=120)
    runs: list[Streamed] = []
    try:
        for i in range(requests + 1):  # the first one warms up llama.cpp and the path
            run = stream_smollm2(client, max_tokens)
            if run is None:
                raise RuntimeError(f"SmolLM2 stream had no content or no usage (request {i})")
            if i > 0:
                runs.append(run)
    finally:
        client.close()
    ttfts = [r.ttft_s for r in runs]
    rates = [r.tokens_per_s for r in runs if r.tokens_per_s is not None]
    return {
        "requests": requests,
        "max_tokens": max_tokens,
        "completion_tokens": sorted({r.tokens for r in runs}),
        "ttft_ms": summary_ms(ttfts),
        "ttft_ms_p50": round(percentile(ttfts, 50) * 1000, 2),
        "ttft_ms_p90": round(percentile(ttfts, 90) * 1000, 2),
        "tokens_per_s_p50": round(percentile(rates, 50), 1),
        "tokens_per_s_p90": round(percentile(rates, 90), 1),
        "request_ms": summary_ms([r.total_s for r in runs]),
    }


def stream_smollm2(client: OpenAI, max_tokens: int) -> Streamed | None:
    """One stream; tokens/s = completion tokens (from the usage chunk) over the time
    between the first and the last content chunk. None without content or usage."""
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
        return None
    rate = usage_tokens / (last - first) if last > first else None
    return Streamed(first - sent, done - sent, usage_tokens, rate)


# --- 3 and 4. proxy vs emulator on echo/local -----------------------------------------
def echo_targets(gw: LocalGateway, stream: bool) -> list[Target]:
    """Same chat body to both; the direct call gets it on the emulator's invoke URL (the
    emulator takes unsigned calls) without `model`, as the proxy sends it (the
    container knows only its served name, and refuses others as vLLM does)."""
    endpoint = gw.registry.resolve(ECHO).endpoint
    operation = "invocations-response-stream" if stream else "invocations"

    def body(model: str | None) -> bytes:
        return chat_body(model, stream=stream, content=ECHO_MESSAGE, max_tokens=16)

    return [
        Target.open("proxy", f"{gw.base_url}/chat/completions", body(ECHO), json_headers(API_KEY)),
        Target.open(
            "direct",
            f"{gw.stack.emulator_url}/endpoints/{endpoint}/{operation}",
            body(None),
            json_headers(),
        ),
    ]


def proxy_and_direct(
    gw: LocalGateway, *, stream: bool, per_target: int, block: int, budget_s: float
) -> tuple[dict[str, float], dict[str, float], int]:
    """Summaries of the proxy's and the emulator's samples, interleaved, and how many
    calls each got. Streamed: time to the first body bytes; else to the whole body."""
    with closing(echo_targets(gw, stream)) as targets:
        samples, ran = interleaved(
            targets,
            first_bytes_once if stream else call_once,
            per_target=per_target,
            block=block,
            warmup=30 if stream else 100,
            budget_s=budget_s,
        )
    return summary_ms(samples["proxy"]), summary_ms(samples["direct"]), ran


def bench_added_latency(
    gw: LocalGateway, per_target: int, block: int, budget_s: float
) -> dict[str, Any]:
    proxy, direct, ran = proxy_and_direct(
        gw, stream=False, per_target=per_target, block=block, budget_s=budget_s
    )
    return {
        "proxy_ms": proxy,
        "direct_ms": direct,
        "added_latency_ms": {
            k: round(proxy[k] - direct[k], 3) for k in ("p50", "p95", "p99", "mean")
        },
        "block": block,
        "requests_per_target_asked": per_target,
        "requests_per_target_run": ran,
    }


def bench_stream_ttfb(
    gw: LocalGateway, per_target: int, block: int, budget_s: float
) -> dict[str, Any]:
    proxy, direct, ran = proxy_and_direct(
        gw, stream=True, per_target=per_target, block=block, budget_s=budget_s
    )
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
