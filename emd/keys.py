"""Key documents (the deployed secret's value, or `emd serve`'s keys.json) and the pure
operations of `emd keys`: list, create, revoke, rotate.

A document maps a key name to the key, or to `{"key": ..., "models": [...]}` for a key
scoped to some models (the format `emd_proxy.auth.parse_key_document` reads)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from emd_proxy.auth import parse_key_document

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

    @property
    def scope(self) -> str:
        if self.models is None:
            return "all models"
        return ", ".join(self.models) if self.models else "no models"


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
    except ValueError as exc:
        raise CliError(f"the key document is invalid: {exc}") from exc
    return document


def list_keys(document: Mapping[str, Any]) -> list[KeyInfo]:
    infos = []
    for name, value in sorted(document.items()):
        if isinstance(value, str):
            infos.append(KeyInfo(name, value, None))
        else:
            models = value.get("models")
            infos.append(KeyInfo(name, value["key"], list(models) if models is not None else None))
    return infos


def default_key(document: Mapping[str, Any]) -> str | None:
    value = document.get("default")
    if isinstance(value, Mapping):
        value = value.get("key")
    return value if isinstance(value, str) and value else None


def create(
    document: Mapping[str, Any], name: str, models: Iterable[str] | None = None
) -> tuple[dict[str, Any], str]:
    """(new document, new key). No models: the key sees every model."""
    if not _NAME.fullmatch(name):
        raise CliError(
            f"invalid key name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)"
        )
    if name in document:
        raise CliError(f"a key named {name!r} exists already: rotate it, or pick another name")
    key = generate_key()
    scope = sorted(set(models)) if models is not None else None
    value: str | dict[str, Any] = key if scope is None else {"key": key, "models": scope}
    return {**document, name: value}, key


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


def _require(document: Mapping[str, Any], name: str) -> None:
    if name not in document:
        known = ", ".join(sorted(document)) or "none"
        raise CliError(f"no key named {name!r} (keys: {known})")
