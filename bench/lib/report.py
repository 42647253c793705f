"""The tables a run prints (rich) and the JSON file it writes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .goals import OFFICIAL
from .stats import QS

if TYPE_CHECKING:  # rich is imported when a table is made: not in a measured start-up
    from rich.console import Console
    from rich.table import Table

Result = dict[str, Any]


def publish(result: Result, out: Path, render: Callable[[Result], None]) -> None:
    """Writes the JSON before the tables, so a table that fails still leaves the
    numbers behind."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    render(result)
    print(f"wrote {out}")


def new_table(title: str, columns: Sequence[str], left: Sequence[str] = ("target",)) -> Table:
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column in left else "right")
    return table


def print_header(console: Console, name: str, result: Result, note: str = "") -> None:
    m = result["machine"]
    console.print(
        f"[bold]{name}[/bold]  {result['date']}{note}\n"
        f"{m['platform']} | {m['cpu_model']} | CPUs: {m['cpu_count']} "
        f"(usable {m['cpus_usable']}) | Python {m['python']}"
    )


def print_footer(console: Console, result: Result, seconds_format: str) -> None:
    for warning in result["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(f"total bench time {result['bench_seconds']:{seconds_format}} s")


# --- compare.py -------------------------------------------------------------------------
def render_compare(result: Result) -> None:
    from rich.console import Console

    from .report_ours import shapes_table, shutdown_table, soak_table

    # At least 120 columns: the streaming table has eleven.
    console = Console(width=max(120, shutil.get_terminal_size().columns))
    run = "quick" if result["config"]["quick"] else "full"
    print_header(console, "compare", result, f"  ({run} run)")
    console.print(sequential_table(result))
    console.print(concurrent_table(result))
    console.print(streaming_table(result))
    console.print(shapes_table(result))
    console.print(memory_table(result))
    console.print(soak_table(result))
    cold = result["cold_start"]
    breakdown = cold["breakdown_s"]
    every, venv = cold["all_families"], cold["venv"]
    console.print(
        f"ours cold starts (the chat Lambda's bundle, EMD_FAMILIES=chat): "
        f"{', '.join(f'{s * 1000:.0f}' for s in cold['runs_s'])} ms; in a "
        f"fresh interpreter, import emd_proxy.main {breakdown['import_s'] * 1000:.0f} ms + "
        f"create_app() {breakdown['create_app_s'] * 1000:.0f} ms. Info: the bundle with "
        f"every family {every['median_s'] * 1000:.0f} ms, the chat family from the venv "
        f"{venv['median_s'] * 1000:.0f} ms (medians)"
    )
    table = new_table(
        "Heaviest imports of emd_proxy.main + create_app() (-X importtime)",
        ("package", "cumulative ms"),
        left=("package",),
    )
    for row in cold["heaviest_imports"]:
        table.add_row(row["package"], f"{row['cumulative_ms']:.1f}")
    console.print(table)
    console.print(shutdown_table(result))
    console.print(goals_table(result))
    console.print(
        "added p50 over the aiohttp floor (info; the official floor's client is httpx): "
        f"ours {result['ratios']['added_p50_over_floor_aiohttp']:.3f}, ours_stub "
        f"{result['ratios_ours_stub']['added_p50_over_floor_aiohttp']:.3f}"
    )
    print_footer(console, result, ".0f")


def label(name: str) -> str:
    return name if name in OFFICIAL else f"[dim]{name} (info)[/dim]"


def sequential_table(result: Result) -> Table:
    seq = result["sequential"]
    table = new_table(
        f"Non-streaming, sequential: 1 client, {seq['requests_per_target']} requests per "
        f"target in blocks of {seq['block']} (ms; added = target - its backend)",
        ("target", "backend", *QS, "added p50", "added p95", "added p99"),
        left=("target", "backend"),
    )
    for name, row in result["targets"].items():
        lat, add = row["latency_ms"], row["added_latency_ms"]
        cells = [f"{lat[q]:.3f}" for q in QS]
        cells += [f"{add[q]:.3f}" if row["backend"] else "-" for q in QS]
        if name == "ours":
            cells = [f"[bold]{c}[/bold]" for c in cells]
        table.add_row(label(name), row["backend"] or "-", *cells)
    info = seq["ours_backend_stream"]
    table.add_row(label("ours_backend_stream"), "-", *(f"{info[q]:.3f}" for q in QS), "", "", "")
    return table


def concurrent_table(result: Result) -> Table:
    conc = result["concurrent"]
    table = new_table(
        f"Non-streaming, concurrent: {conc['clients']} clients, {conc['rounds']} blocks "
        f"of {conc['seconds_per_block']:.0f} s per target",
        ("target", "requests/s", "requests", "errors", "p50 ms", "p99 ms", "RSS peak MiB"),
    )
    for name in [*result["targets"], "ours_backend_stream"]:
        row = conc[name]
        lat = row["latency_ms"] or {}
        table.add_row(
            label(name),
            f"{row['requests_per_s']:.0f}",
            str(row["requests"]),
            str(row["errors"]),
            f"{lat.get('p50', float('nan')):.2f}",
            f"{lat.get('p99', float('nan')):.2f}",
            f"{row['rss_peak_mib']:.0f}" if row["rss_peak_mib"] else "-",
        )
    return table


def streaming_table(result: Result) -> Table:
    stream = result["streaming"]
    table = new_table(
        f"Streaming: time to first token ({stream['ttft_streams_per_target']} streams per "
        f"target) and chunk gaps behind a backend pacing chunks {stream['gap_delay_ms']:.0f} ms "
        f"apart ({stream['gap_streams_per_target']} streams per target) (ms)",
        (
            "target",
            "TTFT p50",
            "TTFT p95",
            "added p50",
            "added p95",
            "gap min",
            "gap p50",
            "gap p99",
            "gap max",
            "held back",
        ),
    )
    for name, row in result["targets"].items():
        ttft, add, gaps = row["ttft_ms"], row["ttft_added_ms"], row.get("stream_gaps_ms")
        gap_cells = [f"{gaps[q]:.1f}" for q in ("min", "p50", "p99", "max")] if gaps else ["-"] * 4
        held = str(row["held_back_chunks"] + row["incomplete_streams"]) if gaps else "-"
        table.add_row(
            label(name),
            f"{ttft['p50']:.3f}",
            f"{ttft['p95']:.3f}",
            f"{add['p50']:.3f}" if row["backend"] else "-",
            f"{add['p95']:.3f}" if row["backend"] else "-",
            *gap_cells,
            held,
        )
    return table


def memory_table(result: Result) -> Table:
    cold = result["cold_start"]
    table = new_table(
        "Start-up and memory of the proxy processes",
        (
            "target",
            "start -> first response",
            "RSS idle MiB",
            "RSS under load MiB",
            "RSS after load MiB",
        ),
    )
    for name, row in result["targets"].items():
        if "rss_mib" not in row:
            continue
        rss = row["rss_mib"]
        started = f"{row['start_to_first_response_s'] * 1000:.0f} ms"
        if name == "ours":
            started = f"{cold['median_s'] * 1000:.0f} ms (median of {len(cold['runs_s'])} fresh)"
        table.add_row(
            label(name),
            started,
            f"{rss['idle']:.0f}",
            f"{rss['under_load_peak'] or 0:.0f}",
            f"{rss['after_load']:.0f}",
        )
    return table


def goals_table(result: Result) -> Table:
    table = new_table(
        "Issue 8 targets (ours); ours_stub: the same proxy, instant backend",
        ("goal", "limit", "ours", "result", "ours_stub (info)"),
        left=("goal",),
    )

    def show(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    for goal in result["goals"]:
        verdict = "[green]pass[/green]" if goal["pass"] else "[red]FAIL[/red]"
        table.add_row(
            goal["description"],
            str(goal["limit"]),
            show(goal["measured"]),
            verdict,
            show(goal["measured_ours_stub"]),
        )
    return table


# --- proxy_latency.py -------------------------------------------------------------------
def render_proxy_latency(result: Result) -> None:
    from rich.console import Console

    console = Console()
    print_header(console, "proxy_latency", result)
    console.print(gateway_table(result))
    console.print(added_latency_table(result))
    console.print(stream_ttfb_table(result))
    print_footer(console, result, ".1f")


def gateway_table(result: Result) -> Table:
    s, sm = result["startup"], result["smollm2"]
    table = new_table(
        "Start-up and SmolLM2-135M (llama.cpp) through the proxy",
        ("metric", "value"),
        left=("metric",),
    )
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
    return table


def added_latency_table(result: Result) -> Table:
    columns = ("min", "p50", "p95", "p99", "max", "mean")
    table = new_table(
        f"echo/local non-streaming, sequential: proxy vs emulator direct "
        f"({result['proxy_ms']['n']} requests each, blocks of {result['block']})",
        ("ms", *columns),
        left=("ms",),
    )
    for name, row in (("proxy", result["proxy_ms"]), ("direct", result["direct_ms"])):
        table.add_row(name, *(f"{row[q]:.3f}" for q in columns))
    added = result["added_latency_ms"]
    table.add_row(
        "[bold]added[/bold]", "", *(f"[bold]{added[q]:.3f}[/bold]" for q in QS),
        "", f"[bold]{added['mean']:.3f}[/bold]",
    )  # fmt: skip
    return table


def stream_ttfb_table(result: Result) -> Table:
    table = new_table(
        f"echo/local streaming, time to first body bytes "
        f"({result['stream_ttfb_proxy_ms']['n']} requests each)",
        ("ms", *QS),
        left=("ms",),
    )
    for name, key in (("proxy", "stream_ttfb_proxy_ms"), ("direct", "stream_ttfb_direct_ms")):
        table.add_row(name, *(f"{result[key][q]:.3f}" for q in QS))
    table.add_row(
        "[bold]added[/bold]",
        f"[bold]{result['stream_ttfb_added_ms_p50']:.3f}[/bold]",
        f"[bold]{result['stream_ttfb_added_ms_p95']:.3f}[/bold]",
        "",
    )
    return table
