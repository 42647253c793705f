"""The `emd:*` context: parsing, defaults, names and every error message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from emd_proxy.registry import Registry
from infra.app import build
from infra.catalog import lookup
from infra.config import ConfigError, load
from tests.infra.synth import ACCOUNT, project_context


def config_of(**context: Any) -> Any:
    return load(context.get)


def test_defaults() -> None:
    config = config_of()
    assert config.prefix == "EMD"
    assert config.api_stack_name == "EMD-API"
    assert config.models == ()
    assert (config.throttle.rate_limit, config.throttle.burst_limit) == (50.0, 100)
    assert config.web_acl_arn is None
    assert json.loads(config.registry_json()) == []


def test_cdk_json_as_shipped_deploys_the_api_alone(tmp_path: Path) -> None:
    """`cdk deploy --all` with the default cdk.json starts no GPU endpoint (billed per
    instance-hour from creation): models are chosen on purpose."""
    ctx = project_context()
    assert ctx["emd:models"] == []
    ctx["aws:cdk:bundling-stacks"] = []
    app = cdk.App(context=ctx, outdir=str(tmp_path))
    config = build(app, env=cdk.Environment(account=ACCOUNT, region="us-east-1"))
    app.synth()
    assert config.models == ()
    assert json.loads(config.registry_json()) == []  # GET /v1/models lists nothing
    assert [p.name for p in tmp_path.glob("*.template.json")] == ["EMD-API.template.json"]
    api = json.loads((tmp_path / "EMD-API.template.json").read_text())
    assert not any(r["Type"].startswith("AWS::SageMaker::") for r in api["Resources"].values())
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert [v for p in report["pluginReports"] for v in p.get("violations", [])] == []


def test_list_and_json_string_give_the_same_models() -> None:
    models = [{"id": "Qwen3-8B", "tag": "Prod.1", "min_capacity": 2, "max_capacity": 3}]
    from_list = config_of(**{"emd:models": models})
    from_string = config_of(**{"emd:models": json.dumps(models)})
    assert from_list == from_string
    (model,) = from_list.models
    assert model.public_id == "Qwen3-8B/Prod.1"
    assert model.stack_name == "EMD-Model-qwen3-8b-prod-1"
    assert model.endpoint_name == "emd-qwen3-8b-prod-1"
    assert model.instance.name == lookup("Qwen3-8B").default_instance_type
    assert (model.min_capacity, model.max_capacity) == (2, 3)


def test_tag_defaults_to_dev_and_max_to_min() -> None:
    (model,) = config_of(**{"emd:models": [{"id": "bge-m3"}]}).models
    assert model.public_id == "bge-m3/dev"
    assert (model.min_capacity, model.max_capacity) == (1, 1)


def test_registry_has_every_model_of_every_family() -> None:
    config = config_of(
        **{
            "emd:prefix": "Team",
            "emd:models": [
                {"id": "Qwen3-8B"},
                {"id": "bge-m3"},
                {"id": "bge-reranker-v2-m3"},
                {"id": "whisper-large-v3-turbo", "tag": "eu"},
            ],
        }
    )
    registry = Registry.from_json(config.registry_json())
    entries = {e.id: e for e in registry.entries()}
    assert set(entries) == {
        "Qwen3-8B/dev",
        "bge-m3/dev",
        "bge-reranker-v2-m3/dev",
        "whisper-large-v3-turbo/eu",
    }
    # The prefix leads the endpoint name: another prefix never shares the endpoint.
    assert entries["Qwen3-8B/dev"].endpoint == "team-qwen3-8b-dev"
    for entry in entries.values():
        catalog = lookup(entry.model)
        assert (entry.engine, entry.families) == (catalog.engine, catalog.families)
        assert entry.features == catalog.features
    assert config.endpoints_of("audio") == ["team-whisper-large-v3-turbo-eu"]
    assert config.endpoints_of("invocations") == [
        "team-qwen3-8b-dev",
        "team-bge-m3-dev",
        "team-bge-reranker-v2-m3-dev",
    ]
    # Deterministic: the same context renders the same registry (and asset hash).
    again = config_of(
        **{"emd:prefix": "Team", "emd:models": [e.choice.model_dump() for e in config.models]}
    )
    assert again.registry_json() == config.registry_json()


def test_reserved_concurrency_per_family() -> None:
    assert config_of().reserved_concurrency == {}
    as_json = config_of(**{"emd:reserved_concurrency": '{"chat": 20, "audio": 2}'})
    as_object = config_of(**{"emd:reserved_concurrency": {"chat": 20, "audio": 2}})
    expected = {"chat": 20, "audio": 2}
    assert as_json.reserved_concurrency == as_object.reserved_concurrency == expected


def test_throttle_and_web_acl() -> None:
    arn = "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/emd/abc"
    config = config_of(
        **{"emd:throttle": '{"rate_limit": 5, "burst_limit": 7}', "emd:web_acl_arn": arn}
    )
    assert (config.throttle.rate_limit, config.throttle.burst_limit) == (5.0, 7)
    assert config.web_acl_arn == arn


_MISTAKES: list[tuple[dict[str, Any], str]] = [
    (
        {"emd:models": [{"id": "Qwen3-9B"}]},
        "emd:models[0]: unknown model 'Qwen3-9B' (did you mean 'Qwen3-8B'?); the catalog has: ",
    ),
    (
        {"emd:models": [{"id": "bge-m3"}, {"id": "Qwen3-8B", "instance_type": "ml.g5.xlarge"}]},
        "emd:models[1]: instance type 'ml.g5.xlarge' is not supported for Qwen3-8B; "
        "choose one of: ml.g6e.xlarge",
    ),
    (
        {"emd:models": [{"id": "bge-m3", "tags": "x"}]},
        "emd:models[0]: tags: Extra inputs are not permitted",
    ),
    ({"emd:models": [{"tag": "x"}]}, "emd:models[0]: id: Field required"),
    (
        {"emd:models": [{"id": "bge-m3", "min_capacity": 0}]},
        "min_capacity: Input should be greater than or equal to 1",
    ),
    (
        {"emd:models": [{"id": "bge-m3", "min_capacity": 3, "max_capacity": 2}]},
        "max_capacity (2) is below min_capacity (3)",
    ),
    ({"emd:models": [{"id": "bge-m3", "tag": "a/b"}]}, "tag 'a/b' must be"),
    (
        {"emd:models": [{"id": "bge-m3", "tag": "a.b"}, {"id": "bge-m3", "tag": "a-b"}]},
        "have the same stack name 'EMD-Model-bge-m3-a-b'",
    ),
    (
        {"emd:models": [{"id": "bge-m3"}, {"id": "bge-m3", "tag": "dev"}]},
        "have the same public id 'bge-m3/dev'",
    ),
    ({"emd:models": "[{id: 1}]"}, "emd:models is not valid JSON"),
    ({"emd:models": {"id": "bge-m3"}}, "emd:models must be a list"),
    ({"emd:prefix": "1abc"}, "emd:prefix '1abc' must be"),
    (
        {"emd:throttle": {"rate_limit": 0}},
        "emd:throttle: rate_limit: Input should be greater than 0",
    ),
    ({"emd:throttle": {"rate": 1}}, "emd:throttle: rate: Extra inputs are not permitted"),
    (
        {"emd:web_acl_arn": "arn:aws:wafv2:us-east-1:1:global/webacl/x/y"},
        "is not a REGIONAL WAFv2 web ACL ARN",
    ),
    (
        {"emd:reserved_concurrency": {"chats": 5}},
        "emd:reserved_concurrency: unknown family 'chats'; families: models, chat, ",
    ),
    (
        {"emd:reserved_concurrency": {"chat": 0}},
        "emd:reserved_concurrency.chat must be a whole number from 1 to 10000, not 0",
    ),
    ({"emd:reserved_concurrency": {"chat": True}}, "must be a whole number"),
    ({"emd:reserved_concurrency": {"chat": "5"}}, "must be a whole number"),
    ({"emd:reserved_concurrency": [5]}, "emd:reserved_concurrency must be an object"),
]


@pytest.mark.parametrize(("context", "message"), _MISTAKES)
def test_mistakes_fail_with_a_clear_message(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_of(**context)
    assert message in str(info.value)
