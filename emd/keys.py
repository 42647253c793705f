"""Key documents (the deployed secret's value, or `emd serve`'s keys.json) and the pure
operations of `emd keys`: list, create, revoke, rotate, limits.

A document maps a key name to the key, or to `{"key": ..., "models": [...],
"limits": {...}}` for a key scoped to some models or with limits of its own. The one
reader of that format is `emd_proxy.auth.parse_key_document`: every document is read
and written through it here, so `emd keys` never writes what the proxy would refuse."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from emd_proxy.auth import LIMIT_FIELDS, KeyLimits, parse_key_document, parse_key_limits

from .config import generate_key
from .errors import CliError

# Names show up in the proxy's logs and in shell commands: keep them plain.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MASK_MIN_LENGTH = 12


@dataclass(frozen=True)
class KeyInfo:
    name: str
    key: str
    models: list[str] | None  # None: every model
    limits: KeyLimits | None = None  # None: no limits of its own

    @property
    def scope(self) -> str:
        if self.models is None:
            return "all models"
        return ", ".join(self.models) if self.models else "no models"

    @property
    def limits_text(self) -> str:
        return describe_limits(self.limits)


def describe_limits(limits: KeyLimits | None) -> str:
    """`2/s (burst 4), 1000/day`, or `none`."""
    if limits is None:
        return "none"
    parts = []
    if limits.rate is not None:
        parts.append(f"{limits.rate:g}/s (burst {limits.effective_burst})")
    if limits.quota is not None:
        parts.append(f"{limits.quota}/{limits.quota_period.lower()}")
    return ", ".join(parts)


def mask(key: str | None) -> str | None:
    """`sk-e…Xy9`: enough to tell keys apart, too little to use one. Short keys show
    nothing at all (a prefix and suffix would give most of them away)."""
    if key is None:
        return None
    if len(key) < _MASK_MIN_LENGTH:
        return "…"
    return f"{key[:4]}…{key[-3:]}"


def validate(document: Any) -> dict[str, Any]:
    """The document as a dict, or a CliError saying what is wrong with it (we never
    write back a document the proxy could not read)."""
    if not isinstance(document, dict):
        raise CliError("the key document is not a JSON object")
    try:
        parse_key_document(document)
    except ValueError as exc:  # names the key and the field, never a value
        raise CliError(f"the key document is invalid: {exc}") from exc
    return document


def list_keys(document: Mapping[str, Any]) -> list[KeyInfo]:
    infos = []
    for parsed in parse_key_document(document):
        p = parsed.principal
        models = sorted(p.models) if p.models is not None else None
        infos.append(KeyInfo(p.name, parsed.secret.decode(), models, p.limits))
    return sorted(infos, key=lambda i: i.name)


def default_key(document: Mapping[str, Any]) -> str | None:
    value = document.get("default")
    if isinstance(value, Mapping):
        value = value.get("key")
    return value if isinstance(value, str) and value else None


def create(
    document: Mapping[str, Any],
    name: str,
    models: Iterable[str] | None = None,
    limits: KeyLimits | None = None,
) -> tuple[dict[str, Any], str]:
    """(new document, new key). No models: the key sees every model; no limits: only
    the gateway's own."""
    if not _NAME.fullmatch(name):
        raise CliError(
            f"invalid key name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)"
        )
    if name in document:
        raise CliError(f"a key named {name!r} exists already: rotate it, or pick another name")
    key = generate_key()
    scope = sorted(set(models)) if models is not None else None
    value: dict[str, Any] = {"key": key}
    if scope is not None:
        value["models"] = scope
    if limits is not None:
        value["limits"] = limits.to_document()
    return {**document, name: _compact(value)}, key


def set_limits(document: Mapping[str, Any], name: str, limits: KeyLimits | None) -> dict[str, Any]:
    """The key's limits replaced by `limits` (None: removed); its key and scope kept."""
    _require(document, name)
    old = document[name]
    value: dict[str, Any] = {"key": old} if isinstance(old, str) else dict(old)
    value.pop("limits", None)
    if limits is not None:
        value["limits"] = limits.to_document()
    return {**document, name: _compact(value)}


def limits_from_options(
    rate: float | None = None,
    burst: int | None = None,
    quota: int | None = None,
    quota_period: str | None = None,
) -> KeyLimits | None:
    """`--rate/--burst/--quota/--quota-period` checked by the proxy's own parser, so a
    limit `emd keys` accepts is one the gateway reads. None: no option given."""
    given: dict[str, Any] = {"rate": rate, "burst": burst, "quota": quota}
    if quota_period is not None:
        given["quota_period"] = quota_period.upper()
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return None
    try:
        return parse_key_limits("", given)
    except ValueError as exc:
        message = str(exc).partition(": ")[2]
        for field in LIMIT_FIELDS:
            message = message.replace(f'"limits.{field}"', f"--{field.replace('_', '-')}")
        raise CliError(message) from exc


def revoke(document: Mapping[str, Any], name: str, *, force: bool = False) -> dict[str, Any]:
    """Without the last key every request gets 401 (it takes `force` to do that)."""
    _require(document, name)
    if len(document) == 1 and not force:
        raise CliError(
            f"{name!r} is the last key: revoking it would lock every client out. Create "
            "another key first, rotate this one, or pass --force"
        )
    return {k: v for k, v in document.items() if k != name}


def rotate(document: Mapping[str, Any], name: str) -> tuple[dict[str, Any], str]:
    """A new key under the same name and scope; the old one stops working."""
    _require(document, name)
    key = generate_key()
    old = document[name]
    value: str | dict[str, Any] = key if isinstance(old, str) else {**old, "key": key}
    return {**document, name: value}, key


def split_models(values: Iterable[str] | None) -> list[str] | None:
    """`--models a --models b,c` -> [a, b, c]; no option at all -> None (every model)."""
    if not values:
        return None
    models = [m.strip() for value in values for m in value.split(",") if m.strip()]
    if not models:
        raise CliError("--models needs at least one model id (leave it out for every model)")
    return models


def _compact(value: dict[str, Any]) -> str | dict[str, Any]:
    """A key with neither scope nor limits is written as the plain key string."""
    return value["key"] if value.keys() == {"key"} else value


def _require(document: Mapping[str, Any], name: str) -> None:
    if name not in document:
        known = ", ".join(sorted(document)) or "none"
        raise CliError(f"no key named {name!r} (keys: {known})")
