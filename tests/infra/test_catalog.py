"""The model catalog as data: required models, images per region, instance rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.catalog import (
    CATALOG,
    INSTANCE_TYPES,
    TENSOR_PARALLEL_ENV,
    lookup,
    volume_size_supported,
)
from infra.images import (
    AMI_CUDA_13,
    DLC_ACCOUNTS,
    TEI,
    TEI_ACCOUNTS,
    VLLM,
    CatalogError,
    ContainerImage,
)


def test_catalog_covers_every_required_kind_of_model() -> None:
    def having(engine: str, family: str, **features: bool) -> list[str]:
        return [
            m.model
            for m in CATALOG.values()
            if m.engine == engine
            and family in m.families
            and all(getattr(m.features, k) == v for k, v in features.items())
        ]

    assert len(having("vllm", "chat", vision=False, reasoning=False)) >= 2  # small + mid
    assert having("vllm", "chat", vision=True)
    assert having("vllm", "chat", reasoning=True)
    assert having("lmi", "chat")
    assert having("tgi", "chat")
    assert having("tei", "embeddings")
    assert having("tei", "rerank")
    assert "whisper-large-v3-turbo" in having("whisperx", "audio")
    # Small (one 24 GB GPU) and mid-size (needs 48 GB or more) instruct models.
    plain = [CATALOG[m] for m in having("vllm", "chat", vision=False, reasoning=False)]
    sizes = {INSTANCE_TYPES[m.default_instance_type].gpu_memory_gib for m in plain}
    assert min(sizes) == 24
    assert max(sizes) >= 48


@pytest.mark.parametrize(
    ("image", "region", "accounts", "domain"),
    [
        (VLLM, "us-east-1", DLC_ACCOUNTS, "amazonaws.com"),
        (VLLM, "af-south-1", DLC_ACCOUNTS, "amazonaws.com"),  # an account of its own
        (VLLM, "cn-north-1", DLC_ACCOUNTS, "amazonaws.com.cn"),
        (TEI, "us-west-2", TEI_ACCOUNTS, "amazonaws.com"),
        (TEI, "cn-north-1", TEI_ACCOUNTS, "amazonaws.com.cn"),
    ],
)
def test_image_uri_per_region(
    image: ContainerImage, region: str, accounts: dict[str, str], domain: str
) -> None:
    assert image.uri(region) == f"{accounts[region]}.dkr.ecr.{region}.{domain}/{image.name}"


def test_tei_has_its_own_account_map_with_gaps() -> None:
    assert TEI_ACCOUNTS["us-east-1"] != DLC_ACCOUNTS["us-east-1"]
    for region in ("ap-east-2", "ap-southeast-5", "mx-central-1"):
        assert region in DLC_ACCOUNTS
        with pytest.raises(CatalogError, match=f"not published in region {region}") as info:
            TEI.uri(region)
        assert "us-east-1" in str(info.value)  # names the regions that have it


def test_every_entry_is_consistent() -> None:
    for m in CATALOG.values():
        assert m.default_instance_type in m.instance_types
        assert all(t in INSTANCE_TYPES for t in m.instance_types)
        assert 60 <= m.startup_health_check_timeout <= 3600
        assert 60 <= m.model_download_timeout <= 3600
        # Every image here is CUDA 12.x/13 and needs a newer driver than the default AMI.
        assert m.inference_ami_version
        assert m.families
        if m.engine == "vllm":
            assert m.environment["SM_VLLM_MODEL"] == m.hf_model_id
            assert int(m.environment["SM_VLLM_MAX_MODEL_LEN"]) == m.max_model_len
            assert m.inference_ami_version == AMI_CUDA_13  # vLLM DLC v2.x: CUDA 13
        if m.engine in ("lmi", "tgi", "tei"):
            assert m.environment["HF_MODEL_ID"] == m.hf_model_id
        if m.features.tools and m.engine == "vllm":
            assert m.environment["SM_VLLM_ENABLE_AUTO_TOOL_CHOICE"] == "true"
            assert m.environment["SM_VLLM_TOOL_CALL_PARSER"]


def test_tensor_parallelism_follows_the_instance() -> None:
    model = lookup("Qwen2.5-14B-Instruct")
    assert (
        model.container_environment(model.instance("ml.g6e.xlarge"))["SM_VLLM_TENSOR_PARALLEL_SIZE"]
        == "1"
    )
    assert (
        model.container_environment(model.instance("ml.g5.12xlarge"))[
            "SM_VLLM_TENSOR_PARALLEL_SIZE"
        ]
        == "4"
    )
    lmi = lookup("Qwen2.5-7B-Instruct")
    assert lmi.container_environment(lmi.instance())[TENSOR_PARALLEL_ENV["lmi"]] == "1"
    tei = lookup("bge-m3")
    assert tei.container_environment(tei.instance()) == tei.environment


@pytest.mark.parametrize(
    ("instance_type", "supported"),
    [
        ("ml.g5.2xlarge", False),
        ("ml.g6.xlarge", False),
        ("ml.g6e.12xlarge", False),
        ("ml.g4dn.xlarge", False),
        ("ml.p4d.24xlarge", False),
        ("ml.p5.48xlarge", False),
        ("ml.p3.2xlarge", True),
        ("ml.c5.xlarge", True),
        ("ml.m5.large", True),
    ],
)
def test_volume_size_rule(instance_type: str, supported: bool) -> None:
    assert volume_size_supported(instance_type) is supported


def test_unknown_model_names_the_catalog_and_a_close_match() -> None:
    with pytest.raises(CatalogError) as info:
        lookup("Qwen3-9B")
    message = str(info.value)
    assert "unknown model 'Qwen3-9B'" in message
    assert "did you mean 'Qwen3-8B'" in message
    for name in CATALOG:
        assert name in message


def test_unsupported_instance_type_names_the_valid_ones() -> None:
    model = lookup("Qwen3-8B")
    with pytest.raises(CatalogError) as info:
        model.instance("ml.g5.xlarge")
    assert "'ml.g5.xlarge' is not supported for Qwen3-8B" in str(info.value)
    for name in model.instance_types:
        assert name in str(info.value)


def test_readme_lists_the_catalog() -> None:
    """The deploy section's model table is what the catalog really offers."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Deploying to AWS", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 6:
            rows[cells[0].strip("`")] = cells
    assert set(rows) == set(CATALOG)
    for name, model in CATALOG.items():
        _, _, families, _, default, others = rows[name]
        assert families == ", ".join(model.families)
        assert default == f"`{model.default_instance_type}`"
        listed = {f"ml.{t.strip()}" for t in others.split(",")} | {model.default_instance_type}
        assert listed == set(model.instance_types), name
