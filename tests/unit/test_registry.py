from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError

from emd_proxy.errors import InvalidRequestError, ModelNotFoundError
from emd_proxy.registry import Registry, RegistryEntry, endpoint_name


def entry(model_id: str, families=("chat",), engine="vllm", **extra) -> RegistryEntry:
    model, tag = model_id.split("/")
    return RegistryEntry(
        id=model_id,
        model=model,
        tag=tag,
        endpoint=endpoint_name(model, tag),
        engine=engine,
        families=list(families),
        **extra,
    )


@pytest.fixture
def registry() -> Registry:
    return Registry(
        [
            entry("Qwen3-8B/dev"),
            entry("Qwen3-8B/prod"),
            entry("echo/local"),
            entry("multilingual-e5-small/local", families=("embeddings", "rerank"), engine="tei"),
        ]
    )


def test_resolve_by_full_id(registry) -> None:
    found = registry.resolve("Qwen3-8B/prod", "chat")
    assert found.id == "Qwen3-8B/prod"
    assert found.endpoint == "emd-qwen3-8b-prod"


def test_resolve_bare_name_with_one_tag(registry) -> None:
    assert registry.resolve("echo").id == "echo/local"
    assert registry.resolve("echo", "chat").id == "echo/local"


def test_bare_name_with_two_tags_is_ambiguous(registry) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        registry.resolve("Qwen3-8B", "chat")
    assert info.value.status == 404
    assert info.value.param == "model"


def test_bare_name_resolves_to_the_only_tag_the_key_can_see(registry) -> None:
    visible = frozenset({"Qwen3-8B/dev"})
    assert registry.resolve("Qwen3-8B", "chat", visible).id == "Qwen3-8B/dev"


@pytest.mark.parametrize("model_id", ["nope", "nope/dev", "Qwen3-8B/staging", "qwen3-8b/dev", ""])
def test_unknown_model_is_404(registry, model_id) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        registry.resolve(model_id, "chat")
    body = info.value.body()["error"]
    assert info.value.status == 404
    assert body["code"] == "model_not_found"
    assert body["type"] == "invalid_request_error"
    assert body["param"] == "model"


@pytest.mark.parametrize("model_id", ["Qwen3-8B/dev", "Qwen3-8B", "multilingual-e5-small/local"])
def test_invisible_model_is_404_not_403(registry, model_id) -> None:
    visible = frozenset({"echo/local"})
    with pytest.raises(ModelNotFoundError) as info:
        registry.resolve(model_id, "chat", visible)
    assert info.value.status == 404
    # Exactly what an unknown id says, so a scoped key learns nothing.
    with pytest.raises(ModelNotFoundError) as unknown:
        registry.resolve("zzz", "chat", visible)
    assert info.value.message.replace(model_id, "zzz") == unknown.value.message


def test_wrong_family_is_400_naming_the_families(registry) -> None:
    with pytest.raises(InvalidRequestError) as info:
        registry.resolve("multilingual-e5-small/local", "chat")
    error = info.value
    assert type(error) is InvalidRequestError
    assert error.status == 400
    assert error.param == "model"
    assert "embeddings" in error.message
    assert "rerank" in error.message
    assert "chat" in error.message


def test_an_invisible_model_of_the_wrong_family_is_still_404(registry) -> None:
    with pytest.raises(ModelNotFoundError):
        registry.resolve("multilingual-e5-small/local", "chat", frozenset({"echo/local"}))


def test_entries_filter_by_visibility(registry) -> None:
    assert len(registry.entries()) == 4
    assert [e.id for e in registry.entries(frozenset({"echo/local", "ghost/x"}))] == ["echo/local"]
    assert registry.entries(frozenset()) == []


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Registry([entry("echo/local"), entry("echo/local")])


def test_json_round_trip(registry) -> None:
    again = Registry.from_json(registry.to_json())
    assert again.entries() == registry.entries()


def test_entry_rejects_unknown_fields_and_engines() -> None:
    with pytest.raises(ValidationError):
        RegistryEntry.model_validate({**entry("echo/local").model_dump(), "surprise": 1})
    with pytest.raises(ValidationError):
        entry("echo/local", engine="ollama")
    with pytest.raises(ValidationError):
        entry("echo/local", families=("images",))


DESIGN_EXAMPLE = {
    "id": "Qwen3-8B/dev",
    "model": "Qwen3-8B",
    "tag": "dev",
    "endpoint": "emd-qwen3-8b-dev",
    "engine": "vllm",
    "families": ["chat"],
    "features": {"tools": True, "vision": False, "reasoning": False},
    "defaults": {},
    "created": 1764115200,
}


def test_from_env_reads_the_registry_file(tmp_path) -> None:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps([DESIGN_EXAMPLE]))
    registry = Registry.from_env({"EMD_REGISTRY_FILE": str(path), "EMD_REGISTRY": "[]"})
    resolved = registry.resolve("Qwen3-8B", "chat")
    assert resolved.endpoint == "emd-qwen3-8b-dev"
    assert resolved.features.tools is True
    assert resolved.created == 1764115200


def test_from_env_reads_inline_json() -> None:
    registry = Registry.from_env({"EMD_REGISTRY": json.dumps([DESIGN_EXAMPLE])})
    assert registry.resolve("Qwen3-8B/dev").engine == "vllm"


def test_from_env_empty() -> None:
    assert Registry.from_env({}).entries() == []


def test_from_env_rejects_a_bad_registry() -> None:
    with pytest.raises(ValidationError):
        Registry.from_env({"EMD_REGISTRY": json.dumps([{"id": "x"}])})


# --- endpoint_name -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "tag", "expected"),
    [
        ("Qwen3-8B", "dev", "emd-qwen3-8b-dev"),
        ("SmolLM2-135M-Instruct", "local", "emd-smollm2-135m-instruct-local"),
        ("whisper-tiny.en", "local", "emd-whisper-tiny-en-local"),
        ("Llama 3.1 (8B)", "my_tag", "emd-llama-3-1-8b-my-tag"),
        ("a--b__c", "x..y", "emd-a-b-c-x-y"),
        ("model-", "-tag-", "emd-model-tag"),
    ],
)
def test_endpoint_name(model, tag, expected) -> None:
    assert endpoint_name(model, tag) == expected


def test_long_names_are_cut_with_a_hash() -> None:
    model = "A-Very-Long-Model-Name-That-Goes-On-And-On-For-Quite-A-While-Indeed"
    name = endpoint_name(model, "dev")
    assert len(name) <= 63
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name)  # SageMaker's pattern, no `--`
    assert re.search(r"-[0-9a-f]{6}$", name)
    assert name.startswith("emd-a-very-long-model-name")
    assert endpoint_name(model, "dev") == name  # deterministic


def test_long_names_differing_at_the_end_stay_distinct() -> None:
    base = "x" * 80
    assert endpoint_name(base + "1", "dev") != endpoint_name(base + "2", "dev")
    assert endpoint_name(base, "dev") != endpoint_name(base, "prod")


def test_a_name_of_exactly_63_characters_is_kept() -> None:
    model = "m" * (63 - len("emd--dev"))
    assert endpoint_name(model, "dev") == f"emd-{model}-dev"
    assert len(endpoint_name(model + "m", "dev")) <= 63


def test_the_prefix_leads_the_name() -> None:
    assert endpoint_name("Qwen3-8B", "dev", prefix="EMD") == "emd-qwen3-8b-dev"
    assert endpoint_name("Qwen3-8B", "dev", prefix="Team_1") == "team-1-qwen3-8b-dev"
    assert endpoint_name("Qwen3-8B", "dev") == endpoint_name("Qwen3-8B", "dev", prefix="EMD")


def test_long_names_of_two_prefixes_stay_distinct() -> None:
    # Cut at 63 characters the two would be equal: only the hash keeps them apart.
    model, tag = "m" * 40, "t" * 32
    one = endpoint_name(model, tag, prefix="Team-A-" + "p" * 20)
    two = endpoint_name(model, tag, prefix="Team-B-" + "p" * 20)
    assert one != two
    assert len(one) == len(two) == 63
    assert one.startswith("team-a-") and two.startswith("team-b-")
    same_cut = endpoint_name("x" * 80, "dev", prefix="Alpha")
    other = endpoint_name("x" * 80, "prod", prefix="Alpha")
    assert same_cut[:56] == other[:56] and same_cut != other
