"""Embeddings `dimensions` (Matryoshka models only) and token-id input (models whose
catalog entry allows it): the route's checks and the adapters' container bodies."""

from __future__ import annotations

import json
import math

import pytest

from emd_proxy.engines import adapter
from emd_proxy.errors import InvalidRequestError
from emd_proxy.registry import Features, RegistryEntry
from emd_proxy.routes.embeddings import check_dimensions, check_input_kind, fit_dimensions


def entry(engine: str = "tei", **features: bool | int) -> RegistryEntry:
    return RegistryEntry(
        id=f"m-{engine}/dev",
        model=f"m-{engine}",
        tag="dev",
        endpoint="emd-m-dev",
        engine=engine,  # type: ignore[arg-type]
        families=["embeddings"],
        features=Features(**features),
    )


def test_features_flags_are_false_unless_set() -> None:
    assert not Features().flag("matryoshka")
    assert not Features(matryoshka=False).flag("matryoshka")  # type: ignore[call-arg]
    assert Features(matryoshka=True).flag("matryoshka")  # type: ignore[call-arg]
    # Shown in /v1/models as the catalog set them, nothing added for other models.
    assert "matryoshka" not in Features(tools=True).model_dump()


@pytest.mark.parametrize("engine", ["tei", "vllm"])
def test_dimensions_on_a_model_without_matryoshka_is_vllms_400(engine: str) -> None:
    model = entry(engine)
    with pytest.raises(InvalidRequestError) as info:
        check_dimensions(model, 256)
    assert info.value.param == "dimensions"
    assert info.value.message == (
        f'Model "{model.id}" does not support matryoshka representation, changing output '
        "dimensions will lead to poor results."
    )
    check_dimensions(model, None)
    check_dimensions(entry(engine, matryoshka=True), 256)


def test_dimensions_above_the_models_vector_size_is_a_400_before_the_call() -> None:
    model = entry(matryoshka=True, dimensions=768)
    assert model.features.vector_size == 768
    check_dimensions(model, 768)
    check_dimensions(model, 64)
    with pytest.raises(InvalidRequestError) as info:
        check_dimensions(model, 769)
    assert (info.value.param, info.value.code) == ("dimensions", "integer_above_max_value")
    assert info.value.message == (
        "Invalid 'dimensions': integer above maximum value. Expected a value <= 768, but "
        "got 769 instead."
    )
    # Without the size in the catalog the engine judges (its refusal names the field).
    check_dimensions(entry(matryoshka=True), 10_000)
    assert entry(dimensions=True).features.vector_size is None  # not a number


@pytest.mark.parametrize("engine", ["tei", "vllm"])
def test_both_engines_shorten_natively(engine: str) -> None:
    embeddings = adapter(entry(engine, matryoshka=True), "embeddings")
    assert embeddings.native_dimensions
    body = json.loads(embeddings.build(["a"], 64, {}).body)
    assert body["dimensions"] == 64
    assert "dimensions" not in json.loads(embeddings.build(["a"], None, {}).body)


def test_fit_dimensions_keeps_native_vectors_and_refuses_more_than_the_model_has() -> None:
    native = [[0.6, 0.8], [1.0, 0.0]]
    assert fit_dimensions(native, 2) == native
    assert fit_dimensions(native, None) is native
    (cut,) = fit_dimensions([[3.0, 4.0, 12.0]], 2)  # an engine that ignored the size
    assert cut == pytest.approx([0.6, 0.8]) and math.isclose(math.hypot(*cut), 1.0)
    # vLLM slices, so asking for more than the model has returns the full vector.
    with pytest.raises(InvalidRequestError) as info:
        fit_dimensions([[0.6, 0.8]], 3)
    assert info.value.param == "dimensions"
    assert "at most 2" in info.value.message


@pytest.mark.parametrize("engine", ["tei", "vllm"])
def test_token_ids_need_the_catalog_flag(engine: str) -> None:
    plain = entry(engine)
    embeddings = adapter(plain, "embeddings")
    check_input_kind(plain, embeddings, token_ids=False)
    with pytest.raises(InvalidRequestError) as info:
        check_input_kind(plain, embeddings, token_ids=True)
    assert info.value.param == "input"
    assert "check_embedding_ctx_length=False" in info.value.message
    assert "token ids" in info.value.message
    allowed = entry(engine, token_ids=True)
    check_input_kind(allowed, adapter(allowed, "embeddings"), token_ids=True)
    # Token ids reach the container as the engine takes them.
    body = json.loads(adapter(allowed, "embeddings").build([[1, 2, 3]], None, {}).body)
    assert body.get("inputs", body.get("input")) == [[1, 2, 3]]
