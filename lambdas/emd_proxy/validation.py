"""pydantic validation errors -> one 400 naming the field as a dotted path."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import InvalidRequestError

# Parts pydantic adds to an error location that are not field names (union members,
# validator kinds).
_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list", "none", "json-or-python"})


def field_path(loc: Sequence[Any]) -> str | None:
    parts = []
    for item in loc:
        if isinstance(item, int):
            parts.append(str(item))
            continue
        text = str(item)
        if text in _TYPE_TAGS or any(c in text for c in "[]()") or text.startswith("function-"):
            continue
        parts.append(text)
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or None


def validation_error(errors: Sequence[dict[str, Any]]) -> InvalidRequestError:
    if not errors:
        return InvalidRequestError("The request is invalid.")
    # A union (e.g. message content: string or list of parts) reports one error per
    # member; the deepest location is the one that tells the client what to fix.
    first = max(errors, key=lambda e: len((field_path(e.get("loc", ())) or "").split(".")))
    kind = first.get("type", "")
    param = field_path(first.get("loc", ()))
    if kind == "json_invalid":
        reason = str((first.get("ctx") or {}).get("error", "")).strip()
        return InvalidRequestError(
            "We could not parse the JSON body of your request"
            + (f" ({reason})" if reason else "")
            + ". The API expects a JSON payload (NaN, Infinity and lone surrogates are "
            "not JSON)."
        )
    if param is None and kind == "missing":
        return InvalidRequestError("The request body is missing; send a JSON object.")
    message = str(first.get("msg", "Invalid value"))
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    where = f"'{param}'" if param else "the request body"
    return InvalidRequestError(f"Invalid value for {where}: {message}{more}", param=param)
