"""After `emd keys` writes the deployment's key document: have the stack's key-sync
Lambda (emd_proxy/usage_sync.py) bring API Gateway's API keys and usage plans in line,
so a new key works, a revoked one stops, and new limits apply at once.

The Lambda, not this machine, does the work: it holds the deployment's default limits
and the API id, and its role is the one allowed to change the prefix's API keys and
usage plans. The caller needs `lambda:InvokeFunction` on it."""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape

from .aws import Aws, aws_errors
from .errors import CliError
from .status_view import stderr_console


def run_sync(aws: Aws, function_name: str) -> dict[str, Any]:
    """The Lambda's report (key and plan names, never values), or a CliError."""
    with aws_errors():
        answer = aws.client("lambda").invoke(
            FunctionName=function_name,
            InvocationType="RequestResponse",
            Payload=json.dumps({"action": "sync"}).encode(),
        )
    payload = answer["Payload"].read()
    try:
        report = json.loads(payload or b"null")
    except ValueError:
        report = None
    if answer.get("FunctionError") or not isinstance(report, dict):
        detail = report.get("errorType") if isinstance(report, dict) else None
        raise CliError(f"the key-sync Lambda {function_name} failed ({detail or 'no answer'})")
    if "error" in report:
        raise CliError(f"the key-sync Lambda refused the key document: {report['error']}")
    return report


def after_write(aws: Aws, function_name: str | None) -> None:
    """Sync and say what changed; a failure is a warning (the document is written)."""
    err = stderr_console()
    if not function_name:
        err.print(
            "[yellow]emd keys: this stack has no KeySyncFunctionName output (deployed before "
            "per-key limits): redeploy it so API Gateway enforces the keys' limits[/yellow]"
        )
        return
    try:
        report = run_sync(aws, function_name)
    except CliError as exc:
        err.print(
            f"[yellow]emd keys: the key document is saved, but API Gateway's API keys and "
            f"usage plans were not updated: {escape(str(exc))}. Run `emd keys sync` (or "
            "redeploy) once that is fixed.[/yellow]"
        )
        return
    err.print(f"API Gateway usage plans synced: {escape(describe(report))}.")


def describe(report: dict[str, Any]) -> str:
    changes = [
        f"{label} {', '.join(report[field])}"
        for field, label in (
            ("created_keys", "added"),
            ("replaced_keys", "replaced"),
            ("deleted_keys", "removed"),
            ("moved_keys", "new limits for"),
        )
        if report.get(field)
    ]
    return "; ".join(changes) if changes else "no change needed"
