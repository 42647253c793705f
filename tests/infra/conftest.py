"""Synthesis fixtures for the infra tests.

jsii synthesis is slow (seconds per app), so each context is synthesized once per
session and its templates are shared by every module that reads them. Fast tests
skip Lambda bundling with the standard `aws:cdk:bundling-stacks: []` context; the
bundle tests (test_bundle.py) build it for real.
"""

from __future__ import annotations

import os

# Before aws_cdk starts its jsii kernel: no Node end-of-life banner, no telemetry.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CDK_DISABLE_CLI_TELEMETRY", "true")

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.infra.synth import Synth, synth

# One model per endpoint family, plus every engine, a non-default instance type and
# autoscaling bounds.
ONE_PER_FAMILY = [
    {"id": "Qwen3-8B", "tag": "dev"},
    {
        "id": "Qwen3-4B-Instruct-2507",
        "tag": "prod",
        "instance_type": "ml.g5.12xlarge",
        "min_capacity": 2,
        "max_capacity": 4,
    },
    {"id": "Qwen2.5-7B-Instruct"},
    {"id": "Qwen2.5-Coder-7B-Instruct"},
    {"id": "bge-m3"},
    {"id": "bge-reranker-v2-m3"},
    {"id": "whisper-large-v3-turbo"},
]
# Region unknown at synth (images through a CfnMapping), families without models, a
# WAF web ACL, another prefix and throttle, reserved concurrency for two families.
AGNOSTIC = [{"id": "bge-m3", "tag": "v2"}, {"id": "whisper-large-v3-turbo"}]
WEB_ACL_ARN = "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/emd/0123-abcd"


@pytest.fixture(scope="session")
def make_synth(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Synth]:
    def make(**kwargs: object) -> Synth:
        return synth(tmp_path_factory.mktemp("cdk"), **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def multi(make_synth: Callable[..., Synth]) -> Synth:
    return make_synth(models=ONE_PER_FAMILY, region="us-east-1")


@pytest.fixture(scope="session")
def agnostic(make_synth: Callable[..., Synth]) -> Synth:
    return make_synth(
        models=AGNOSTIC,
        region=None,
        context={
            "emd:prefix": "Team1",
            "emd:throttle": '{"rate_limit": 5, "burst_limit": 10}',
            "emd:web_acl_arn": WEB_ACL_ARN,
            "emd:reserved_concurrency": '{"chat": 20, "audio": 2}',
        },
    )


@pytest.fixture(scope="session")
def empty(make_synth: Callable[..., Synth]) -> Synth:
    return make_synth(models=[], region=None)


@pytest.fixture(scope="session")
def root() -> Path:
    return Path(__file__).resolve().parents[2]
