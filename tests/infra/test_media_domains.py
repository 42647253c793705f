"""Allowed media domains of vLLM vision models: the container downloads image and
video URLs itself (the proxy never does), so a deployment lists the hosts it may
download from; by default none (data: URLs only)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from infra.catalog import MEDIA_DOMAINS_ENV, MEDIA_REDIRECTS_ENV, lookup
from infra.config import ConfigError, load
from infra.images import CatalogError
from tests.infra import cfn
from tests.infra.synth import Synth

VISION = "Qwen3-VL-8B-Instruct"


def environment_of(synth: Synth, stack: str) -> dict[str, str]:
    (model,) = cfn.resources(synth.template(stack), "AWS::SageMaker::Model").values()
    return model["Properties"]["PrimaryContainer"]["Environment"]


@pytest.fixture(scope="module")
def vision(make_synth: Callable[..., Synth]) -> Synth:
    return make_synth(
        models=[
            {"id": VISION, "tag": "dev"},
            {
                "id": VISION,
                "tag": "web",
                "media_domains": ["images.example.com", "cdn.example.org"],
            },
            {"id": "Qwen3-8B"},
        ]
    )


def test_a_vision_model_fetches_nothing_by_default(vision: Synth) -> None:
    env = environment_of(vision, "EMD-Model-qwen3-vl-8b-instruct-dev")
    # A hostname that never resolves (RFC 2606): an empty list would allow every domain.
    assert json.loads(env[MEDIA_DOMAINS_ENV]) == ["invalid"]
    assert env[MEDIA_REDIRECTS_ENV] == "0"
    assert env["SM_VLLM_MODEL"] == "Qwen/Qwen3-VL-8B-Instruct"  # the rest unchanged


def test_listed_domains_reach_the_container_as_a_json_array(vision: Synth) -> None:
    env = environment_of(vision, "EMD-Model-qwen3-vl-8b-instruct-web")
    assert json.loads(env[MEDIA_DOMAINS_ENV]) == ["images.example.com", "cdn.example.org"]
    assert env[MEDIA_REDIRECTS_ENV] == "0"


def test_a_text_model_gets_no_media_settings(vision: Synth) -> None:
    env = environment_of(vision, "EMD-Model-qwen3-8b-dev")
    assert MEDIA_DOMAINS_ENV not in env
    assert MEDIA_REDIRECTS_ENV not in env


def test_only_vllm_models_with_media_features_fetch_media() -> None:
    assert lookup(VISION).fetches_media
    for name in ("Qwen3-8B", "Qwen2.5-7B-Instruct", "bge-m3", "whisper-large-v3-turbo"):
        assert not lookup(name).fetches_media
    text = lookup("Qwen3-8B")
    with pytest.raises(CatalogError, match="takes no media_domains"):
        text.container_environment(text.instance(), ["images.example.com"])


def config_of(models: list[dict[str, Any]]) -> Any:
    return load({"emd:models": models}.get)


_BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    (
        {"id": "Qwen3-8B", "media_domains": ["images.example.com"]},
        "emd:models[0]: media_domains apply only to models whose container downloads media "
        "URLs (vLLM models with the vision, video or audio feature); Qwen3-8B (vllm) has none",
    ),
    (
        {"id": "Qwen2.5-7B-Instruct", "media_domains": []},
        "Qwen2.5-7B-Instruct (lmi) has none",
    ),
    ({"id": VISION, "media_domains": ["https://images.example.com"]}, "are not hostnames"),
    (
        {"id": VISION, "media_domains": ["*.example.com"]},
        "emd:models[0]: media_domains: Value error, ['*.example.com'] are not hostnames",
    ),
    ({"id": VISION, "media_domains": ["images.example.com:8443"]}, "are not hostnames"),
    ({"id": VISION, "media_domains": ["Images.Example.com"]}, "lowercase"),
    ({"id": VISION, "media_domains": [""]}, "are not hostnames"),
    (
        {"id": VISION, "media_domains": "images.example.com"},
        "media_domains: Value error, must be a list of hostnames",
    ),
    (
        {"id": VISION, "media_domains": [f"host{i}.images.example.com" for i in range(60)]},
        "1024-character limit",
    ),
]


@pytest.mark.parametrize(("choice", "message"), _BAD_OPTIONS)
def test_a_bad_media_domains_option_fails_synth(choice: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_of([choice])
    assert message in str(info.value)
    assert str(info.value).startswith("emd:models[0]: ")


def test_an_empty_list_means_no_domains() -> None:
    (deployment,) = config_of([{"id": VISION, "media_domains": []}]).models
    env = deployment.catalog.container_environment(
        deployment.instance, deployment.choice.media_domains
    )
    assert json.loads(env[MEDIA_DOMAINS_ENV]) == ["invalid"]
