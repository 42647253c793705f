"""`emd keys list | create | revoke | rotate` as commands, on the deployment's secret
or (with --local) on `emd serve`'s keys.json.

A new key goes to stdout alone (so `KEY=$(emd keys create --name ci)` works) and is
never shown again; everything else goes to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from . import config, keys
from .aws import Aws, api_stack_name, describe_stack, find_deployment
from .errors import CliError
from .key_stores import FileKeys, KeyDocumentStore, SecretKeys, modify
from .status_view import stderr_console, stdout_console

# The proxy's default EMD_KEY_CACHE_SECONDS (the deployed Lambdas keep the default).
DEPLOYED_PICKUP_SECONDS = 60


class Target:
    """Where the keys live, and how soon a change takes effect there."""

    def __init__(self, *, local: bool, prefix: str, region: str | None) -> None:
        self.local = local
        self.prefix = prefix
        self.aws: Aws | None = None
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


def list_keys(target: Target, show_key: bool, as_json: bool) -> None:
    infos = keys.list_keys(target.store.read().document)
    if as_json:
        rows = [
            {"name": i.name, "models": i.models, "key": i.key if show_key else keys.mask(i.key)}
            for i in infos
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if not infos:
        stderr_console().print(f"no keys in {escape(target.store.where)}")
        return
    table = Table(title=Text(f"Keys in {target.store.where}"), title_justify="left")
    for column in ("name", "scope", "key"):
        table.add_column(column)
    for info in infos:
        shown = info.key if show_key else keys.mask(info.key)
        table.add_row(Text(info.name), Text(info.scope), Text(shown or ""))
    stdout_console().print(table)


def create(target: Target, name: str, models: list[str] | None) -> None:
    err = stderr_console()
    for model in target.unknown_models(models or []):
        err.print(f"[yellow]emd keys: warning: {escape(model)} is not deployed here[/yellow]")
    key = modify(target.store, lambda doc: keys.create(doc, name, models))
    scope = "all models" if models is None else ", ".join(sorted(set(models)))
    _print_new_key(key)
    err.print(
        f"Created key {escape(name)} for {escape(scope)} in {escape(target.store.where)}; "
        f"it is shown only this once and works {target.delay}."
    )


def revoke(target: Target, name: str, force: bool) -> None:
    modify(target.store, lambda doc: (keys.revoke(doc, name, force=force), None))
    stderr_console().print(
        f"Revoked key {escape(name)} in {escape(target.store.where)}; "
        f"it stops working {target.delay}."
    )


def rotate(target: Target, name: str) -> None:
    key = modify(target.store, lambda doc: keys.rotate(doc, name))
    _print_new_key(key)
    stderr_console().print(
        f"Rotated key {escape(name)} (same scope) in {escape(target.store.where)}; the new "
        f"key is shown only this once. The switch happens {target.delay}."
    )


def _print_new_key(key: str) -> None:
    sys.stdout.write(key + "\n")
    sys.stdout.flush()
