"""The family table is what the app mounts and what infra routes: a family's routes
in the app are exactly its table rows, and the registry's families are the table's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import get_args

import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from emd_proxy.app import create_app
from emd_proxy.auth import KeyStore
from emd_proxy.families import API_FAMILIES, BY_NAME, FAMILIES, MODELS, Family
from emd_proxy.registry import Registry
from emd_proxy.settings import Settings


class _NoAws:
    """create_app builds no SageMaker client when given one."""


def mounted_routes(families: tuple[str, ...]) -> set[tuple[str, str]]:
    app = create_app(
        Settings(families=families),
        registry=Registry([]),
        keys=KeyStore.static({"k": "sk-k"}),
        sagemaker=_NoAws(),  # type: ignore[arg-type]
    )
    return set(_api_routes(app.routes))


def _api_routes(routes: list[BaseRoute]) -> Iterator[tuple[str, str]]:
    for route in routes:
        if isinstance(route, APIRoute):
            # FastAPI's `{model_id:path}` is API Gateway's greedy `{id+}`.
            path = re.sub(r"\{\w+:path\}", "{id+}", route.path)
            yield from ((method, path) for method in route.methods)
        elif hasattr(route, "original_router"):  # an included router (FastAPI >= 0.16x)
            yield from _api_routes(route.original_router.routes)


def table_routes(*names: str) -> set[tuple[str, str]]:
    by_name = {spec.name: spec for spec in FAMILIES}
    return {(r.method, r.path) for name in names for r in by_name[name].routes}


@pytest.mark.parametrize("family", API_FAMILIES)
def test_a_family_process_mounts_exactly_its_table_routes(family: str) -> None:
    assert mounted_routes((family,)) == table_routes(MODELS, family)


def test_models_only_process_serves_models_and_health() -> None:
    assert mounted_routes(()) == table_routes(MODELS)


def test_every_family_at_once() -> None:
    assert mounted_routes(API_FAMILIES) == table_routes(*(s.name for s in FAMILIES))


def test_every_model_family_is_served_by_a_family_of_the_same_name() -> None:
    """A model family names the Lambda (and IAM) of its own routes; more API families
    (completions, ...) may serve the same models."""
    assert {s.models for s in FAMILIES if s.models} == set(get_args(Family))
    assert all(BY_NAME[family].models == family for family in get_args(Family))
    assert len(BY_NAME) == len(FAMILIES)
