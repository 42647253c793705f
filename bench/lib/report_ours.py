"""compare's tables about ours alone (report.py has the side-by-side ones): the API
shapes over chat models, memory over a streaming soak, `emd serve`'s shutdown."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .report import new_table

if TYPE_CHECKING:
    from rich.table import Table

Result = dict[str, Any]


def verdict(passed: bool) -> str:
    return "[green]pass[/green]" if passed else "[red]FAIL[/red]"


def shapes_table(result: Result) -> Table:
    shapes = result["api_shapes"]
    table = new_table(
        f"API shapes on ours (echo/local): sequential, {shapes['requests_per_shape']} requests "
        f"per shape in blocks of {shapes['block']}; streamed, {shapes['ttft_streams_per_shape']} "
        "per shape (ms; added = shape - the emulator called directly, as for chat above; "
        "every request checked: 200 and the echo's text; the JSON has p95 and TTFT added p99)",
        (
            "shape",
            "p50",
            "added p50",
            "added p99",
            "TTFT p50",
            "TTFT p99",
            "TTFT added p50",
            "checked",
        ),
        left=("shape",),
    )
    base = shapes["baseline"]
    lat, ttft = base["latency_ms"], base["ttft_ms"]
    table.add_row(
        "[dim]emulator direct (baseline)[/dim]",
        f"{lat['p50']:.3f}",
        "-",
        "-",
        f"{ttft['p50']:.3f}",
        f"{ttft['p99']:.3f}",
        "-",
        f"{base['checked'] + base['checked_streams']}",
    )
    for name, row in shapes["shapes"].items():
        lat, add = row["latency_ms"], row["added_latency_ms"]
        ttft, ttft_add = row["ttft_ms"], row["ttft_added_ms"]
        table.add_row(
            f"[bold]{name}[/bold]" if name == "chat" else name,
            f"{lat['p50']:.3f}",
            f"{add['p50']:.3f}",
            f"{add['p99']:.3f}",
            f"{ttft['p50']:.3f}",
            f"{ttft['p99']:.3f}",
            f"{ttft_add['p50']:.3f}",
            f"{row['checked'] + row['checked_streams']}",
        )
    return table


def soak_table(result: Result) -> Table:
    soak = result["memory_soak"]
    if "skipped" in soak:
        table = new_table(
            "Memory over a streaming soak", ("target", "result"), ("target", "result")
        )
        table.add_row("ours", f"skipped: {soak['skipped']}")
        return table
    table = new_table(
        f"Memory over a streaming soak: {soak['clients']} clients streaming echo/local for "
        f"{soak['seconds']:.0f} s after a {soak['warm_up_seconds']:.0f} s warm-up "
        f"({soak['streams']} streams, {soak['streams_per_s']:.0f}/s, "
        f"{soak['failures']} failed); RSS MiB",
        ("process", "before", "peak", "after", "growth", "limit", "result"),
        left=("process",),
    )
    rss = soak["rss_mib"]
    table.add_row(
        "ours (the gateway)",
        f"{rss['before']:.1f}",
        f"{rss['peak']:.1f}",
        f"{rss['after']:.1f}",
        f"[bold]{soak['growth_mib']:+.1f}[/bold]",
        f"< {soak['limit_mib']:.0f}",
        verdict(soak["pass"]),
    )
    rss = soak["backend_rss_mib"]
    table.add_row(
        "[dim]ours_backend (info): emulator + echo[/dim]",
        f"{rss['before']:.1f}",
        f"{rss['peak']:.1f}",
        f"{rss['after']:.1f}",
        f"{soak['backend_growth_mib']:+.1f}",
        "-",
        "-",
    )
    return table


def shutdown_table(result: Result) -> Table:
    down = result["shutdown"]
    table = new_table(
        f"`{down['command']}`: SIGTERM -> exit with an idle keep-alive connection open",
        (
            "run",
            "SIGTERM -> exit",
            "of it, backend stop (its own figure)",
            "exit code",
            "limit",
            "result",
        ),
        left=("run",),
    )
    for i, run in enumerate(down["runs"], 1):
        seconds = run["seconds"]
        problems = [
            *(["a traceback in its output"] if run["traceback"] else []),
            *([f"left running: {run['left_running']}"] if run["left_running"] else []),
        ]
        table.add_row(
            str(i),
            f"{seconds:.3f} s" if seconds is not None else "no exit (killed)",
            f"{run['reported_stop_s']:.2f} s" if run["reported_stop_s"] is not None else "-",
            str(run["exit_code"]),
            f"< {down['limit_s']:.0f} s",
            verdict(run["pass"]) + (f" ({'; '.join(problems)})" if problems else ""),
        )
    return table
