"""pydantic validation errors -> one 400 naming the field as a dotted path; a wrong type
or a number out of bounds in OpenAI's own words and codes ("Invalid type for
'max_tokens': expected an integer, but got a string instead.", `invalid_type`;
"Invalid 'n': integer below minimum value. ...", `integer_below_min_value`)."""

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
    if param is not None and len(errors) == 1:
        if kind in _EXPECTED:
            return type_error(param, _EXPECTED[kind], first.get("input"))
        bound = _bound_error(param, kind, first)
        if bound is not None:
            return bound
    message = str(first.get("msg", "Invalid value"))
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    where = f"'{param}'" if param else "the request body"
    return InvalidRequestError(f"Invalid value for {where}: {message}{more}", param=param)


# pydantic's type errors of the strict fields -> what OpenAI says was expected. These
# and the bounds are worded so only for a lone error: a union's members each fail, and
# "expected a string" would hide that a list was fine too.
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "float_type": "a decimal",
    "float_parsing": "a decimal",
    "string_type": "a string",
}

# pydantic's bound errors -> (operator, the ctx key holding the bound).
_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


def type_error(param: str, expected: str, value: Any) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid type for '{param}': expected {expected}, but got {_json_kind(value)} instead.",
        param=param,
        code="invalid_type",
    )


def bound_error(param: str, value: int | float, op: str, limit: int | float) -> InvalidRequestError:
    """OpenAI's message for a number out of bounds: `integer_above_max_value` and
    friends (`decimal_...` for a float field)."""
    kind = "decimal" if isinstance(limit, float) else "integer"
    below = op in (">=", ">")
    where = "below minimum value" if below else "above maximum value"
    return InvalidRequestError(
        f"Invalid '{param}': {kind} {where}. Expected a value {op} {_number(limit)}, but "
        f"got {_number(value)} instead.",
        param=param,
        code=f"{kind}_below_min_value" if below else f"{kind}_above_max_value",
    )


def _bound_error(param: str, kind: str, error: dict[str, Any]) -> InvalidRequestError | None:
    found = _BOUNDS.get(kind)
    value = error.get("input")
    limit = (error.get("ctx") or {}).get(found[1]) if found else None
    if found is None or not isinstance(value, int | float) or not isinstance(limit, int | float):
        return None  # a length bound (a list, a string) keeps pydantic's words
    return bound_error(param, value, found[0], limit)


def _number(value: int | float) -> str:
    # As OpenAI (JavaScript) prints numbers: 1e+30, 2, 0.5.
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, int) and abs(value) >= 10**21:
        return f"{float(value):g}"
    return str(value)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
