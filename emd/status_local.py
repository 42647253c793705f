"""`emd status --local`: the `emd serve` recorded in serve.json, checked live (its
process, GET /health, and GET /v1/models with the local key), and with
`--scale-to-zero-after` its inference components (GET <control_url>/_emulator/components)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import httpx

from emd_proxy.registry import endpoint_name

from . import config
from .errors import CliError
from .keys import default_key, mask
from .status_scale import SCALE_JSON_FIELDS, scale_state

_TIMEOUT = httpx.Timeout(5.0)


@dataclass
class LocalReport:
    base_url: str
    pid: int
    api_key: str | None
    models: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # stderr; the exit code stays 0

    def to_json(self, show_key: bool) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "pid": self.pid,
            "api_key": self.api_key if show_key else mask(self.api_key),
            "models": self.models,
        }


def collect_local() -> LocalReport:
    state = _serve_state()
    base_url, pid = str(state["base_url"]).rstrip("/"), int(state["pid"])
    if not _alive(pid):
        raise CliError(
            f"emd serve (pid {pid}) is not running any more ({config.serve_state_path()} "
            "is stale): start it with `emd serve`"
        )
    key = _local_key()
    # trust_env=False: a corporate HTTP(S)_PROXY must not capture loopback calls.
    with httpx.Client(timeout=_TIMEOUT, trust_env=False) as http:
        _check_health(http, base_url, pid)
        report = LocalReport(base_url, pid, key, _list_models(http, base_url, key))
        # What each model's component is called (a local component is named as its
        # model's endpoint); not part of the output.
        endpoints = [model.pop("endpoint") for model in report.models]
        control_url = state.get("control_url")
        if control_url:
            _add_components(http, str(control_url).rstrip("/"), report, endpoints)
    return report


def _add_components(
    http: httpx.Client, control_url: str, report: LocalReport, endpoints: list[str | None]
) -> None:
    """Each model's component fields; unreadable rows leave them null, with a warning."""
    url = f"{control_url}/_emulator/components"
    try:
        response = http.get(url)
        response.raise_for_status()
        rows = response.json()["components"]
        by_name = {str(row["name"]): row for row in rows}
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        report.warnings.append(f"cannot read the inference components from {url}: {exc}")
        return
    for model, endpoint in zip(report.models, endpoints, strict=True):
        row = by_name.get(endpoint or "")
        if row is not None:
            model.update(_component_fields(row))


def _component_fields(row: dict[str, Any]) -> dict[str, Any]:
    current, desired = row.get("current_copy_count"), row.get("desired_copy_count")
    return {
        "instance_count": row.get("instance_count"),
        "inference_component": row.get("name"),
        "copy_count": current,
        "desired_copy_count": desired,
        "scale_state": scale_state(row.get("status"), current, desired, bool(row.get("waking"))),
        "last_wake_seconds": row.get("last_wake_seconds"),
    }


def _serve_state() -> dict[str, Any]:
    path = config.serve_state_path()
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise CliError(
            f"no local gateway is running ({path} not found): start one with `emd serve`"
        ) from None
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from exc
    if not isinstance(state, dict) or "base_url" not in state or "pid" not in state:
        raise CliError(f"{path} is not a record of `emd serve` (no base_url and pid)")
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _local_key() -> str | None:
    """A key `emd serve` accepts: EMD_API_KEY (its override), else the saved `default`
    key, else the first saved key that sees every model."""
    if os.environ.get("EMD_API_KEY"):
        return os.environ["EMD_API_KEY"]
    try:
        document = json.loads(config.keys_path().read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    unscoped = [v for _, v in sorted(document.items()) if isinstance(v, str) and v]
    return default_key(document) or next(iter(unscoped), None)


def _check_health(http: httpx.Client, base_url: str, pid: int) -> None:
    root = base_url.removesuffix("/v1")
    try:
        response = http.get(f"{root}/health")
    except httpx.HTTPError as exc:
        raise CliError(f"emd serve (pid {pid}) does not answer at {root}/health: {exc}") from exc
    if response.status_code != 200:
        raise CliError(f"emd serve at {root}/health answered HTTP {response.status_code}")


def _list_models(http: httpx.Client, base_url: str, key: str | None) -> list[dict[str, Any]]:
    if key is None:
        raise CliError(
            f"no local key: {config.keys_path()} has no `default` key; set EMD_API_KEY to "
            "the key emd serve printed"
        )
    try:
        response = http.get(f"{base_url}/models", headers={"Authorization": f"Bearer {key}"})
    except httpx.HTTPError as exc:
        raise CliError(f"GET {base_url}/models failed: {exc}") from exc
    if response.status_code == 401:
        raise CliError(
            f"emd serve at {base_url} rejected the local key (started with --api-key? set "
            "EMD_API_KEY to that key)"
        )
    if response.status_code != 200:
        raise CliError(f"GET {base_url}/models answered HTTP {response.status_code}")
    models = []
    for card in response.json().get("data", []):
        extra = card.get("emd") or {}
        models.append(
            {
                "id": card.get("id"),
                "families": extra.get("families", []),
                "engine": extra.get("engine"),
                # The same shape as `emd status --json` rows: null where nothing applies
                # (a laptop has no instance price, so the costs always are).
                "instance_count": None,
                **dict.fromkeys(SCALE_JSON_FIELDS),
                "endpoint": _local_endpoint(extra),
            }
        )
    return models


def _local_endpoint(extra: dict[str, Any]) -> str | None:
    model, tag = extra.get("model"), extra.get("tag")
    return endpoint_name(model, tag) if isinstance(model, str) and isinstance(tag, str) else None
