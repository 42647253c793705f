"""GET /v1/models and GET /v1/models/{id}: the models the caller's key may see; and
GET /health (no key, reveals nothing)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ..families import api_paths
from ..jsonio import StrictJsonRoute
from ..openapi import BEARER_AUTH, ERROR_RESPONSES
from ..registry import RegistryEntry
from ..schemas.models import Model, ModelList
from ..state import principal, services

router = APIRouter(route_class=StrictJsonRoute, responses=ERROR_RESPONSES)


def model_card(entry: RegistryEntry) -> dict[str, Any]:
    """OpenAI's model object, plus what we know about it under `emd`."""
    emd: dict[str, Any] = {
        "model": entry.model,
        "tag": entry.tag,
        "families": entry.families,
        "apis": api_paths(entry.families),
        "engine": entry.engine,
        "features": entry.features.model_dump(),
    }
    if entry.metadata:
        emd["metadata"] = entry.metadata
    return {
        "id": entry.id,
        "object": "model",
        "created": entry.created,
        "owned_by": "emd",
        "emd": emd,
    }


@router.get(
    "/v1/models",
    response_model=Any,  # the dict as is, unvalidated: see openapi.py
    responses={200: {"model": ModelList}},
    openapi_extra=BEARER_AUTH,
)
async def list_models(request: Request) -> dict[str, Any]:
    entries = services(request).registry.entries(principal(request).models)
    return {"object": "list", "data": [model_card(e) for e in entries]}


@router.get(
    "/v1/models/{model_id:path}",
    response_model=Any,  # the dict as is, unvalidated: see openapi.py
    responses={200: {"model": Model}},
    openapi_extra=BEARER_AUTH,
)
async def retrieve_model(model_id: str, request: Request) -> dict[str, Any]:
    entry = services(request).registry.resolve(model_id, visible=principal(request).models)
    return model_card(entry)


@router.get("/health", include_in_schema=False)
async def health() -> dict[str, str]:
    return {"status": "ok"}
