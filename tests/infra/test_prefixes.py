"""Two prefixes deploy the same model and tag in one account and region: every
account-wide name differs, and each API may invoke only its own endpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from cdk_nag import AwsSolutionsChecks

from infra.config import DeployConfig, load
from infra.stacks.api_stack import ApiStack
from infra.stacks.model_stack import ModelStack
from tests.infra import cfn
from tests.infra.synth import ACCOUNT, project_context

PREFIXES = ("EMD", "Staging")
MODELS = [{"id": "Qwen3-8B", "tag": "dev"}, {"id": "bge-m3", "tag": "dev"}]


class TwoPrefixes:
    def __init__(self, outdir: Path) -> None:
        ctx = project_context()
        ctx["emd:models"] = MODELS
        ctx["aws:cdk:bundling-stacks"] = []
        app = cdk.App(context=ctx, outdir=str(outdir))
        env = cdk.Environment(account=ACCOUNT, region="us-east-1")
        self.configs: dict[str, DeployConfig] = {}
        for prefix in PREFIXES:
            context = {**ctx, "emd:prefix": prefix}
            config = load(context.get)
            ApiStack(app, config=config, env=env)
            for deployment in config.models:
                ModelStack(app, deployment=deployment, env=env)
            self.configs[prefix] = config
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
        app.synth()
        self.outdir = outdir

    def template(self, stack: str) -> dict[str, Any]:
        return json.loads((self.outdir / f"{stack}.template.json").read_text())


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> TwoPrefixes:
    return TwoPrefixes(tmp_path_factory.mktemp("two-prefixes"))


def account_wide_names(two: TwoPrefixes, prefix: str) -> set[str]:
    """Endpoint, log group and scaling resource names of one prefix's model stacks."""
    names: set[str] = set()
    for deployment in two.configs[prefix].models:
        template = two.template(deployment.stack_name)
        for res in template["Resources"].values():
            props = res.get("Properties", {})
            for key in ("EndpointName", "LogGroupName", "ResourceId", "ModelName"):
                if isinstance(props.get(key), str):
                    names.add(props[key])
        names.add(template["Outputs"]["EndpointName"]["Value"])
    return names


def test_endpoints_and_log_groups_carry_the_prefix(two: TwoPrefixes) -> None:
    emd, staging = (account_wide_names(two, p) for p in PREFIXES)
    assert emd == {
        "emd-qwen3-8b-dev",
        "/aws/sagemaker/Endpoints/emd-qwen3-8b-dev",
        "emd-bge-m3-dev",
        "/aws/sagemaker/Endpoints/emd-bge-m3-dev",
    }
    assert staging == {
        "staging-qwen3-8b-dev",
        "/aws/sagemaker/Endpoints/staging-qwen3-8b-dev",
        "staging-bge-m3-dev",
        "/aws/sagemaker/Endpoints/staging-bge-m3-dev",
    }
    assert emd.isdisjoint(staging)


def test_each_registry_names_its_own_endpoints(two: TwoPrefixes) -> None:
    for prefix in PREFIXES:
        entries = json.loads(two.configs[prefix].registry_json())
        assert {e["id"] for e in entries} == {"Qwen3-8B/dev", "bge-m3/dev"}
        assert {e["endpoint"] for e in entries} == {
            f"{prefix.lower()}-qwen3-8b-dev",
            f"{prefix.lower()}-bge-m3-dev",
        }


def test_each_api_may_invoke_only_its_own_endpoints(two: TwoPrefixes) -> None:
    for prefix in PREFIXES:
        api = two.template(f"{prefix}-API")
        granted: set[str] = set()
        for policy in cfn.resources(api, "AWS::IAM::Policy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if "sagemaker:InvokeEndpoint" in cfn.actions(statement):
                    granted.update(cfn.listify(statement["Resource"]))
        own = {
            f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/{prefix.lower()}-{name}"
            for name in ("qwen3-8b-dev", "bge-m3-dev")
        }
        assert granted == own, prefix


def test_both_prefixes_pass_cdk_nag(two: TwoPrefixes) -> None:
    report = json.loads((two.outdir / "validation-report.json").read_text())
    violations = [v for p in report["pluginReports"] for v in p.get("violations", [])]
    assert violations == [], json.dumps(violations, indent=1)[:3000]
