"""TEI's wire format, as the local TEI container parses and answers it: the request
bodies of embed and rerank, TEI's error body and status per error type, and the
plain-text rejections of axum's Json extractor (router/src/http/types.rs, server.rs,
lib.rs in huggingface/text-embeddings-inference)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse

# HTTP status of each TEI ErrorType (server.rs `impl From<&ErrorType> for StatusCode`).
_STATUS = {
    "Validation": 413,
    "Empty": 400,
    "Tokenizer": 422,
    "Backend": 424,
    "Overloaded": 429,
    "Unhealthy": 503,
}
DESERIALIZE = "Failed to deserialize the JSON body into the target type: "


class TeiError(Exception):
    """TEI's ErrorResponse: `{"error", "error_type"}`, status from the type. The type is
    the Rust variant name ("Validation"): ErrorType derives Serialize with no rename,
    although TEI's OpenAPI examples show lowercase."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.message, "error_type": self.error_type},
            status_code=_STATUS[self.error_type],
        )


class Rejected(Exception):
    """A body axum's Json extractor refuses before TEI sees it (plain text)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass(frozen=True)
class EmbedRequest:
    inputs: list[str]
    truncate: bool | None
    left: bool  # truncation_direction == "left"
    prompt_name: str | None
    dimensions: int | None


@dataclass(frozen=True)
class RerankRequest:
    query: str
    texts: list[str]
    truncate: bool | None
    left: bool
    raw_scores: bool
    return_text: bool


def json_kind(value: Any) -> str:
    """How serde names a JSON value in its error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f"string {json.dumps(value)}"
    return "sequence" if isinstance(value, list) else "map"


def _field(body: dict[str, Any], name: str, check: Callable[[Any], bool], expected: str) -> Any:
    value = body.get(name)
    if name in body and not check(value):
        raise Rejected(
            422, f"{DESERIALIZE}{name}: invalid type: {json_kind(value)}, expected {expected}"
        )
    return value


def _bool(body: dict[str, Any], name: str, default: bool, optional: bool = False) -> Any:
    value = _field(
        body, name, lambda v: isinstance(v, bool) or (optional and v is None), "a boolean"
    )
    return default if value is None and not optional else value


def _direction(body: dict[str, Any]) -> bool:
    value = body.get("truncation_direction", "right")
    if not isinstance(value, str) or value.lower() not in ("left", "right"):
        raise Rejected(
            422,
            f"{DESERIALIZE}truncation_direction: unknown variant {json_kind(value)}, "
            "expected `left` or `right`",
        )
    return value.lower() == "left"


def parse_embed(body: dict[str, Any]) -> tuple[EmbedRequest, bool]:
    """(request, whether `inputs` was a single string)."""
    inputs = body["inputs"]
    single = isinstance(inputs, str)
    if single:
        inputs = [inputs]
    elif not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        ids = isinstance(inputs, list) and all(isinstance(i, (int, list)) for i in inputs)
        raise Rejected(
            422,
            f"{DESERIALIZE}inputs: "
            + (
                "token ids are not supported by the local container"
                if ids
                else "data did not match any variant of untagged enum EmbeddingInput"
            ),
        )
    dimensions = _field(
        body,
        "dimensions",
        lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0),
        "usize",
    )
    _bool(body, "normalize", True)  # validated for fidelity; vectors are always unit
    request = EmbedRequest(
        inputs=list(inputs),
        truncate=_bool(body, "truncate", False, optional=True),
        left=_direction(body),
        prompt_name=_field(
            body, "prompt_name", lambda v: v is None or isinstance(v, str), "a string"
        ),
        dimensions=dimensions,
    )
    return request, single


def parse_rerank(body: dict[str, Any]) -> RerankRequest:
    query = _field(body, "query", lambda v: isinstance(v, str), "a string")
    texts = _field(
        body,
        "texts",
        lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v),
        "a sequence of strings",
    )
    return RerankRequest(
        query=query,
        texts=list(texts),
        truncate=_bool(body, "truncate", False, optional=True),
        left=_direction(body),
        raw_scores=_bool(body, "raw_scores", False),
        return_text=_bool(body, "return_text", False),
    )


def rank(scores: Sequence[float], texts: Sequence[str], return_text: bool) -> list[dict[str, Any]]:
    """TEI's order: a stable ascending sort, reversed (so among equal scores the later
    text comes first)."""
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    order.reverse()
    ranks: list[dict[str, Any]] = []
    for i in order:
        entry: dict[str, Any] = {"index": i}
        if return_text:
            entry["text"] = texts[i]
        entry["score"] = float(scores[i])
        ranks.append(entry)
    return ranks
