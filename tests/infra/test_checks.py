"""cdk-nag AwsSolutions and cfn-lint over every synthesized template, and synth
failures with clear messages (in-process and through app.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam

from infra.app import build
from infra.config import ConfigError
from tests.infra.synth import Synth, project_context, synth

# Every acknowledgment the app makes, by construct path suffix and rule. A new one
# must be added here on purpose, with its reason in the code.
EXPECTED_ACKNOWLEDGMENTS = {
    ("/ApiKeys", "AwsSolutions-SMG4"),
    ("Lambda/Role", "AwsSolutions-IAM5[Resource::*]"),
    ("Lambda/Function", "AwsSolutions-L1"),
    ("/Gateway/Api", "AwsSolutions-APIG2"),
    ("/Gateway/Api", "AwsSolutions-APIG3"),
    ("/Gateway/Api", "AwsSolutions-APIG4"),
    ("/Gateway/Api", "AwsSolutions-COG4"),
    (
        "/Gateway/Api/CloudWatchRole",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AmazonAPIGatewayPushToCloudWatchLogs]",
    ),
    ("/Endpoint/ExecutionPolicy", "AwsSolutions-IAM5[Resource::*]"),
    # The key sync changes API keys and usage plans whose ids API Gateway makes.
    *(
        (
            "/KeySync/Lambda/Role",
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:apigateway:<AWS::Region>::{p}]",
        )
        for p in ("/apikeys/*", "/usageplans/*", "/tags/*")
    ),
}
# CDK's Function declares DependsOn on its role as well as on the role's policy; the
# role half repeats what the GetAtt already implies. Harmless, and not ours to change.
CFN_LINT_IGNORED = ["W3005"]


def test_cdk_nag_finds_nothing_unacknowledged(multi: Synth, agnostic: Synth, empty: Synth) -> None:
    for synthesized in (multi, agnostic, empty):
        report = synthesized.validation_report()
        violations = [v for p in report["pluginReports"] for v in p.get("violations", [])]
        assert violations == [], json.dumps(violations, indent=1)[:3000]


def test_every_acknowledgment_is_expected_and_has_a_reason(tmp_path: Path) -> None:
    ctx = project_context()
    ctx["aws:cdk:bundling-stacks"] = []
    ctx["emd:models"] = [{"id": "bge-m3"}]
    app = cdk.App(context=ctx, outdir=str(tmp_path))
    build(app)
    app.synth()
    found = set()
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type != cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                continue
            for rule, reason in entry.data.items():
                rule_id = rule.removeprefix("Annotation::")
                suffix = next(
                    (
                        s
                        for s, r in EXPECTED_ACKNOWLEDGMENTS
                        if r == rule_id and construct.node.path.endswith(s)
                    ),
                    None,
                )
                assert suffix is not None, (construct.node.path, rule_id)
                assert len(reason) >= 60, (rule_id, reason)
                found.add((suffix, rule_id))
    assert found == EXPECTED_ACKNOWLEDGMENTS


def test_cdk_nag_is_active(tmp_path: Path) -> None:
    """Zero findings mean something: an unacknowledged wildcard fails the synth."""
    ctx = project_context()
    ctx["aws:cdk:bundling-stacks"] = []
    ctx["emd:models"] = []
    app = cdk.App(context=ctx, outdir=str(tmp_path))
    build(app)
    careless = cdk.Stack(app, "Careless")
    role = iam.Role(careless, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["sagemaker:*"], resources=["*"]))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert "AwsSolutions-IAM5[Action::sagemaker:*]" in rules


def test_cfn_lint_passes_on_every_template(multi: Synth, agnostic: Synth, empty: Synth) -> None:
    files = [str(f) for s in (multi, agnostic, empty) for f in s.template_files()]
    assert len(files) == 8 + 3 + 1
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), "--ignore-checks", *CFN_LINT_IGNORED, "--", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_region_without_the_image_fails_synth(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        synth(tmp_path, models=[{"id": "bge-m3"}], region="ap-southeast-5")
    message = str(info.value)
    assert message.startswith("bge-m3/dev in ap-southeast-5: image tei:")
    assert "is not published in region ap-southeast-5; regions that have it: " in message
    assert "us-east-1" in message


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (
            '[{"id": "Qwen3-9B"}]',
            "emd: emd:models[0]: unknown model 'Qwen3-9B' (did you mean 'Qwen3-8B'?); "
            "the catalog has: ",
        ),
        (
            '[{"id": "bge-m3", "instance_type": "ml.p9.huge"}]',
            "emd: emd:models[0]: instance type 'ml.p9.huge' is not supported for bge-m3; "
            "choose one of: ml.g5.xlarge, ",
        ),
    ],
)
def test_app_py_exits_with_one_clear_line(root: Path, models: str, message: str) -> None:
    """`-c emd:models='<json>'` reaches app.py as a string in CDK_CONTEXT_JSON."""
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps(
            {**project_context(), "emd:models": models, "aws:cdk:bundling-stacks": []}
        ),
    }
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # no traceback
    assert result.stderr.startswith(message), result.stderr
