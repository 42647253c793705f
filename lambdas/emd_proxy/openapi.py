"""What /openapi.json says beyond the routes' signatures, declared once: the
OpenAI-shaped errors a router documents for all its operations (`ERROR_RESPONSES`), the
Bearer key every /v1 operation needs (`BEARER_AUTH`), and the components FastAPI
derives from no route (`add_components`: the Bearer scheme, and the model of each
`data:` event of a text/event-stream answer, `event_stream`).

Only FastAPI's document builder reads these: nothing here runs per request. A route
declares its 200 with `responses=` and keeps sending its dict or Response as it is. A
route answering a dict sets `response_model=Any`: FastAPI then serialises the dict with
pydantic-core without validating it (what an untyped `dict[str, Any]` cost); `None`
would switch it to `jsonable_encoder` plus `json.dumps`, 3-4x slower on an embeddings
answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .schemas.errors import ErrorResponse

_REF = "#/components/schemas/{model}"


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


# DESIGN.md's error table, for `APIRouter(responses=...)`. "default" also keeps FastAPI
# from documenting its 422, which this app never sends (validation errors answer 400):
# FastAPI adds one only to an operation whose responses have none of "422", "4XX" and
# "default".
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("Invalid request (the `param` names the field)"),
    401: _error("Missing or wrong API key"),
    404: _error("Unknown model, or one the key may not see"),
    413: _error("Request body too large"),
    429: _error("Throttled; see Retry-After"),
    502: _error("The model failed or answered garbage"),
    503: _error("The model is not ready; see Retry-After"),
    504: _error("The model did not answer in time"),
    "default": _error("Any other failure (e.g. 405, 500), in the same shape"),
}

# `openapi_extra` of every /v1 operation. The middleware checks the key: a FastAPI
# security dependency would declare this too, but it runs on every request.
BEARER_AUTH: dict[str, Any] = {"security": [{"bearerAuth": []}]}
_SECURITY_SCHEMES = {"bearerAuth": {"type": "http", "scheme": "bearer"}}

# The models `event_stream()` declared, by component name.
_STREAMED: dict[str, type[BaseModel]] = {}


def event_stream(model: type[BaseModel]) -> dict[str, Any]:
    """The `content` entry of a text/event-stream answer whose `data:` events are each
    one `model` (as OpenAI's own OpenAPI document declares its streams)."""
    _STREAMED[model.__name__] = model
    return {"text/event-stream": {"schema": {"$ref": _REF.format(model=model.__name__)}}}


def add_components(document: dict[str, Any]) -> None:
    """Adds to FastAPI's document the Bearer scheme and the schemas of the event-stream
    models its operations refer to (FastAPI generates only the models it validates with
    or that `responses=` names as a `model`)."""
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(_SECURITY_SCHEMES)
    streamed = set()
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for answer in operation.get("responses", {}).values():
                stream = answer.get("content", {}).get("text/event-stream", {})
                name = stream.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
                if name in _STREAMED:
                    streamed.add(name)
    if not streamed:
        return
    models = [(_STREAMED[name], "serialization") for name in sorted(streamed)]
    _, definitions = models_json_schema(models, ref_template=_REF)  # type: ignore[arg-type]
    schemas = components.setdefault("schemas", {})
    for name, schema in definitions.get("$defs", {}).items():
        # A model the answers share (e.g. CompletionUsage) is FastAPI's already.
        schemas.setdefault(name, schema)
    components["schemas"] = dict(sorted(schemas.items()))
