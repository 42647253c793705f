"""How `emd status` looks in a terminal: a header with the base URL and key, a model
table, and the problems as one line each on stderr."""

from __future__ import annotations

import sys

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from infra.prices import PRICES_AS_OF, usd

from .keys import mask
from .status import MISSING, ModelStatus, StatusReport
from .status_scale import IN_SERVICE, SCALED_TO_ZERO, WAKING

_STATUS_STYLE = {"InService": "green", "Failed": "red", MISSING: "red"}
_SCALE_LABEL = {
    SCALED_TO_ZERO: ("scaled to zero", "dim"),
    WAKING: ("waking", "bold yellow"),
    IN_SERVICE: ("in service", "green"),
}


def stdout_console() -> Console:
    # Wide when piped, so scripts and tests see whole cells instead of "…".
    # emoji=False: ARNs contain ":secret:", which rich would turn into an emoji.
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200, emoji=False)


def stderr_console() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)


def render(report: StatusReport, show_key: bool) -> RenderableType:
    key = report.api_key if show_key else mask(report.api_key)
    lines = [
        Text.assemble(("EMD gateway ", "bold"), f"{report.prefix} in {report.region}"),
        Text.assemble("Base URL: ", (report.base_url or "(not available yet)", "cyan")),
        Text(
            f"API key:  {key or '(not available)'}"
            + ("" if show_key or not key else "  (--show-key prints it)")
        ),
    ]
    return Group(*lines, model_table(report.models), cost_line(report))


def cost_line(report: StatusReport) -> Text:
    """The endpoints' on-demand cost per day (infra/prices.py), "?" where unknown."""
    total = report.total_daily_usd
    if total is not None:
        amount = usd(total, per="/day")
    elif report.known_daily_usd:
        amount = f"? (at least {usd(report.known_daily_usd, per='/day')}; some prices unknown)"
    else:
        amount = "? (no price known for these instances in this region)"
    return Text(
        f"Cost:     {amount} on demand for the endpoints as they run now "
        f"(SageMaker prices of {PRICES_AS_OF})"
    )


def model_table(models: list[ModelStatus]) -> Table:
    # The scale column only where some model can scale to zero, so the usual table
    # stays as narrow as before.
    scaling = any(m.inference_component for m in models)
    columns = ["model", "families", "engine", "instance", "endpoint"]
    columns += ["scale"] if scaling else []
    table = Table(title="Models", title_justify="left")
    for column in (*columns, "stack", "created"):
        table.add_column(column)
    table.add_column("$/hour", justify="right")
    for m in models:
        # Text cells: values from AWS are never read as rich markup.
        cells = [
            Text(m.id) if m.id else Text(m.stack_name, style="dim"),
            Text(", ".join(m.families) or "-"),
            Text(m.engine or "-"),
            Text(_instance(m)),
            Text(m.endpoint_status, style=_STATUS_STYLE.get(m.endpoint_status, "yellow")),
        ]
        if scaling:
            cells.append(
                scale_cell(
                    m.inference_component,
                    m.scale_state,
                    m.copy_count,
                    m.desired_copy_count,
                    m.last_wake_seconds,
                )
            )
        cells += [
            Text(m.stack_status),
            Text(m.created.replace("T", " ").replace("Z", " UTC") if m.created else "-"),
            Text(
                cost_cell(m.inference_component, m.hourly_cost_now, m.hourly_cost_full)
                if m.inference_component
                else usd(m.hourly_usd)
            ),
        ]
        table.add_row(*cells)
    return table


def scale_cell(
    component: str | None,
    state: str | None,
    copies: int | None,
    desired: int | None,
    last_wake: float | None,
) -> Text:
    """`scaled to zero 0/0 copies, last wake 4m 06s`; "-" for a model that cannot
    scale to zero (shared with `emd status --local`)."""
    if not component:
        return Text("-")
    label, style = _SCALE_LABEL.get(state or "", ("unknown", "red"))
    text = Text(label, style=style)
    text.append(f" {_count(copies)}/{_count(desired)} copies")
    if last_wake is not None:
        text.append(f", last wake {duration(last_wake)}")
    return text


def cost_cell(component: str | None, now: float | None, full: float | None) -> str:
    return f"{usd(now)} (full {usd(full)})" if component else usd(now)


def duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"
    return f"{whole // 60}m {whole % 60:02d}s"


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def progress_line(report: StatusReport) -> str:
    """One line per poll when the screen cannot be redrawn (piped, or --json)."""
    counts: dict[str, int] = {}
    for m in report.models:
        counts[m.endpoint_status] = counts.get(m.endpoint_status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no models"
    waking = sum(m.scale_state == WAKING for m in report.models)
    if waking:
        summary += f", {waking} waking from zero"
    state = "done" if report.settled else "waiting"
    return f"emd status: {state}: {summary}"


def print_problems(err: Console, report: StatusReport) -> None:
    for warning in report.warnings:
        err.print(f"[yellow]emd status: warning: {escape(warning)}[/yellow]")
    for problem in report.problems:
        err.print(f"[red]emd status: {escape(problem)}[/red]")


def _instance(m: ModelStatus) -> str:
    if not m.instance_type:
        return "-"
    if m.instance_count is None:
        return m.instance_type
    text = f"{m.instance_type} x {m.instance_count}"
    if m.desired_count is not None and m.desired_count != m.instance_count:
        text += f" (scaling to {m.desired_count})"
    return text
