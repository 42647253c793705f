"""`emd status` as a command: picks the source (AWS or --local), the output (table or
JSON), watches if asked, and turns every failure into one line and exit code 1."""

from __future__ import annotations

import json
import sys
import time

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .aws import Aws
from .errors import CliError
from .status import StatusReport, collect, dumps, watch
from .status_local import LocalReport, collect_local
from .status_view import (
    print_problems,
    progress_line,
    render,
    scale_cell,
    stderr_console,
    stdout_console,
)


def sleep(seconds: float) -> None:
    """The watch loop's pause (tests replace it to step through states)."""
    time.sleep(seconds)


def run_status(
    *,
    prefix: str,
    region: str | None,
    show_key: bool,
    as_json: bool,
    watching: bool,
    interval: float,
    local: bool,
) -> int:
    out, err = stdout_console(), stderr_console()
    try:
        if local:
            if watching:
                raise CliError("--watch applies to a deployment, not to --local")
            report = collect_local()
            _print_local(out, report, show_key, as_json)
            for warning in report.warnings:
                err.print(f"[yellow]emd status: warning: {escape(warning)}[/yellow]")
            return 0
        aws = Aws(region)
        if not watching:
            report = collect(aws, prefix)
        elif as_json or not out.is_terminal:
            report = watch(aws, prefix, interval, lambda r: err.print(progress_line(r)), sleep)
        else:
            report = _watch_live(aws, prefix, interval, out, show_key)
    except CliError as exc:
        err.print(f"[red]emd status: {escape(str(exc))}[/red]")
        return 1
    except KeyboardInterrupt:
        return 130
    if as_json:
        sys.stdout.write(dumps(report, show_key) + "\n")
    elif not (watching and out.is_terminal):  # the live view already shows the last report
        out.print(render(report, show_key))
    print_problems(err, report)
    return 1 if report.problems else 0


def _watch_live(
    aws: Aws, prefix: str, interval: float, out: Console, show_key: bool
) -> StatusReport:
    with Live(console=out, auto_refresh=False) as live:

        def show(report: StatusReport) -> None:
            live.update(render(report, show_key), refresh=True)

        return watch(aws, prefix, interval, show, sleep)


def _print_local(out: Console, report: LocalReport, show_key: bool, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(show_key), indent=2) + "\n")
        return
    key = report.to_json(show_key)["api_key"]
    out.print(f"[bold]EMD gateway[/bold] (local, pid {report.pid})")
    out.print(f"Base URL: [cyan]{escape(report.base_url)}[/cyan]")
    out.print(f"API key:  {escape(key or '(unknown)')}")
    scaling = any(model.get("inference_component") for model in report.models)
    table = Table(title="Models", title_justify="left")
    for column in ("model", "families", "engine", *(("scale",) if scaling else ())):
        table.add_column(column)
    for model in report.models:
        cells = [
            Text(model["id"] or "-"),
            Text(", ".join(model["families"])),
            Text(model["engine"] or "-"),
        ]
        if scaling:
            cells.append(
                scale_cell(
                    model["inference_component"],
                    model["scale_state"],
                    model["copy_count"],
                    model["desired_copy_count"],
                    model["last_wake_seconds"],
                )
            )
        table.add_row(*cells)
    out.print(table)
