"""`emd doctor` as a command: the checks as a table (or JSON), exit code 1 on a blocker."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .aws import Aws
from .doctor import DoctorReport, diagnose, read_context
from .errors import CliError
from .status_view import stderr_console, stdout_console

_STYLE = {"ok": "green", "warning": "yellow", "blocker": "bold red"}


def run_doctor(
    *,
    app_dir: Path,
    context: list[str] | None,
    region: str | None,
    profile: str | None,
    toolkit_stack_name: str | None,
    as_json: bool,
) -> int:
    out, err = stdout_console(), stderr_console()
    try:
        ctx = read_context(app_dir, context, toolkit_stack_name)
        report = diagnose(ctx, lambda: Aws(region, profile))
    except CliError as exc:
        err.print(f"[red]emd doctor: {escape(str(exc))}[/red]")
        return 1
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        out.print(render(report))
    return 0 if report.ok else 1


def render(report: DoctorReport) -> RenderableType:
    where = " in ".join(x for x in (report.prefix, report.region) if x)
    header = Text.assemble(("emd doctor ", "bold"), where or "")
    if report.account:
        header.append(f" (account {report.account})")
    table = Table(title="Checks", title_justify="left")
    for column in ("check", "status", "detail"):
        table.add_column(column)
    for c in report.checks:
        # Text cells: names and messages from AWS are never read as rich markup.
        table.add_row(Text(c.check), Text(c.status, style=_STYLE[c.status]), Text(c.detail))
    # One whole line per fix, under the table, so commands and links stay copyable.
    fixes = [
        Text.assemble((f"{c.status}: ", _STYLE[c.status]), f"{c.check}: {c.fix}")
        for c in report.checks
        if c.fix and c.status != "ok"
    ]
    blockers, warnings = report.count("blocker"), report.count("warning")
    if blockers:
        summary = Text(
            f"{blockers} blocker{'s' if blockers != 1 else ''}, {warnings} warning"
            f"{'s' if warnings != 1 else ''}: `cdk deploy --all` would fail; "
            "fix the blockers first",
            style="red",
        )
    else:
        summary = Text(
            f"No blockers ({warnings} warning{'s' if warnings != 1 else ''}): ready for "
            "`cdk deploy --all`",
            style="green",
        )
    return Group(header, table, *([Text("Fixes:")] if fixes else []), *fixes, summary)
