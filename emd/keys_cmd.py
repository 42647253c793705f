"""`emd keys list | create | revoke | rotate | limits` as commands, on the deployment's secret
or (with --local) on `emd serve`'s keys.json.

A new key goes to stdout alone (so `KEY=$(emd keys create --name ci)` works) and is
never shown again; everything else goes to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from emd_proxy.auth import KeyLimits

from . import config, key_sync, keys
from .aws import Aws, api_stack_name, describe_stack, find_deployment
from .errors import CliError
from .key_stores import FileKeys, KeyDocumentStore, SecretKeys, modify
from .status_view import stderr_console, stdout_console

# The proxy's default EMD_KEY_CACHE_SECONDS (the deployed Lambdas keep the default).
DEPLOYED_PICKUP_SECONDS = 60
T = TypeVar("T")


class Target:
    """Where the keys live, and how soon a change takes effect there."""

    def __init__(self, *, local: bool, prefix: str, region: str | None) -> None:
        self.local = local
        self.prefix = prefix
        self.aws: Aws | None = None
        self.key_sync_function: str | None = None
        if local:
            self.store: KeyDocumentStore = FileKeys(config.keys_path())
            ttl = config.LOCAL_KEY_TTL_SECONDS
            self.delay = f"within {ttl:g} s (a running `emd serve` re-reads the file)"
            return
        self.aws = Aws(region)
        stack = describe_stack(self.aws, api_stack_name(prefix))
        if stack is None:
            raise CliError(
                f"no stack {api_stack_name(prefix)} in {self.aws.region}: deploy with "
                "`cdk deploy --all` (or pass the right --prefix / --region), or use --local"
            )
        secret = stack.outputs.get("ApiKeySecretArn") or stack.outputs.get("ApiKeySecretName")
        if not secret:
            raise CliError(f"stack {stack.name} has no ApiKeySecretArn output ({stack.status})")
        self.store = SecretKeys(self.aws, secret)
        self.key_sync_function = stack.outputs.get("KeySyncFunctionName")
        self.delay = (
            f"within {DEPLOYED_PICKUP_SECONDS} s (the gateway caches keys for "
            "EMD_KEY_CACHE_SECONDS; no redeploy needed)"
        )

    def unknown_models(self, models: list[str]) -> list[str]:
        """Scoped ids that are not deployed (a typo would give a key that sees nothing)."""
        if self.aws is None:
            return []
        deployed = {s.outputs.get("ModelId") for s in find_deployment(self.aws, self.prefix).models}
        return [m for m in models if m not in deployed]


def run(action: Callable[[], None]) -> int:
    try:
        action()
    except CliError as exc:
        stderr_console().print(f"[red]emd keys: {escape(str(exc))}[/red]")
        return 1
    return 0


def change(target: Target, edit: Callable[[dict[str, Any]], tuple[dict[str, Any], T]]) -> T:
    """The one place every `emd keys` change is written (read, edit, validate, write
    with the version check). Anything that must follow a write of the deployed document
    (e.g. syncing API Gateway usage plans with the keys' limits) belongs here."""
    written: dict[str, Any] = {}

    def recording(document: dict[str, Any]) -> tuple[dict[str, Any], T]:
        new, result = edit(document)
        written.update(new)
        return new, result

    result = modify(target.store, recording)
    if target.aws is not None:  # deployed: API Gateway's API keys and usage plans follow
        key_sync.after_write(target.aws, target.key_sync_function)
    return result


def list_keys(target: Target, show_key: bool, as_json: bool) -> None:
    infos = keys.list_keys(target.store.read().document)
    if as_json:
        rows = [
            {
                "name": i.name,
                "models": i.models,
                "limits": i.limits.to_document() if i.limits else None,
                "key": i.key if show_key else keys.mask(i.key),
            }
            for i in infos
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if not infos:
        stderr_console().print(f"no keys in {escape(target.store.where)}")
        return
    table = Table(title=Text(f"Keys in {target.store.where}"), title_justify="left")
    for column in ("name", "scope", "limits", "key"):
        table.add_column(column)
    for info in infos:
        shown = info.key if show_key else keys.mask(info.key)
        table.add_row(Text(info.name), Text(info.scope), Text(info.limits_text), Text(shown or ""))
    stdout_console().print(table)


def create(
    target: Target, name: str, models: list[str] | None, limits: KeyLimits | None = None
) -> None:
    err = stderr_console()
    for model in target.unknown_models(models or []):
        err.print(f"[yellow]emd keys: warning: {escape(model)} is not deployed here[/yellow]")
    key = change(target, lambda doc: keys.create(doc, name, models, limits))
    scope = "all models" if models is None else ", ".join(sorted(set(models)))
    _print_new_key(key)
    limited = f" (limits: {keys.describe_limits(limits)})" if limits else ""
    err.print(
        f"Created key {escape(name)} for {escape(scope)}{escape(limited)} in "
        f"{escape(target.store.where)}; it is shown only this once and works {target.delay}."
    )


def set_limits(target: Target, name: str, limits: KeyLimits | None) -> None:
    change(target, lambda doc: (keys.set_limits(doc, name, limits), None))
    # Locally `emd serve` enforces limits itself; deployed, API Gateway's usage plans do.
    applies = target.delay if target.local else "through the deployment's API Gateway usage plans"
    stderr_console().print(
        f"Limits of key {escape(name)} are now: {escape(keys.describe_limits(limits))} "
        f"(in {escape(target.store.where)}; they apply {applies})."
    )


def revoke(target: Target, name: str, force: bool) -> None:
    change(target, lambda doc: (keys.revoke(doc, name, force=force), None))
    stderr_console().print(
        f"Revoked key {escape(name)} in {escape(target.store.where)}; "
        f"it stops working {target.delay}."
    )


def rotate(target: Target, name: str) -> None:
    key = change(target, lambda doc: keys.rotate(doc, name))
    _print_new_key(key)
    stderr_console().print(
        f"Rotated key {escape(name)} (same scope) in {escape(target.store.where)}; the new "
        f"key is shown only this once. The switch happens {target.delay}."
    )


def sync(target: Target) -> None:
    """API Gateway's API keys and usage plans from the secret as it is (after an edit
    outside `emd keys`, e.g. in the console)."""
    if target.aws is None:
        stderr_console().print("Nothing to sync locally: `emd serve` reads the file itself.")
        return
    if not target.key_sync_function:
        raise CliError(
            "this stack has no KeySyncFunctionName output (deployed before per-key "
            "limits): redeploy it"
        )
    report = key_sync.run_sync(target.aws, target.key_sync_function)
    stderr_console().print(
        f"API Gateway usage plans synced ({report.get('keys', 0)} keys, plans "
        f"{escape(', '.join(report.get('plans', [])) or 'none')}): "
        f"{escape(key_sync.describe(report))}."
    )


def _print_new_key(key: str) -> None:
    sys.stdout.write(key + "\n")
    sys.stdout.flush()
