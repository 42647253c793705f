"""Scale to zero (`scale_to_zero` in a model's context, issue 18) as synthesized: the
model as an inference component on an endpoint with managed instance scaling from 0,
its copy-count scaling (target tracking in, an alarm-driven step policy out of zero),
the family Lambdas' IAM scoped to the component, the registry naming it, and the
context option's validation."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from emd_proxy.families import FAMILIES
from emd_proxy.registry import Registry
from infra.bundling import LAMBDA_TARGET, asset_hash
from infra.catalog import INSTANCE_TYPES, lookup
from infra.config import ConfigError, load
from tests.infra import cfn
from tests.infra.synth import ACCOUNT, Synth
from tests.infra.test_checks import CFN_LINT_IGNORED

S2Z_MODELS = [
    {"id": "Qwen3-8B", "scale_to_zero": {"idle_minutes": 30, "max_copies": 2}},
    {"id": "bge-m3", "scale_to_zero": True},
    # A plain model beside them: its stack must be what it is without them.
    {"id": "bge-reranker-v2-m3"},
]
QWEN = "EMD-Model-qwen3-8b-dev"
BGE = "EMD-Model-bge-m3-dev"
RERANKER = "EMD-Model-bge-reranker-v2-m3-dev"


@pytest.fixture(scope="module")
def s2z(make_synth: Callable[..., Synth]) -> Synth:
    return make_synth(models=S2Z_MODELS, region="us-east-1")


def one(template: cfn.Template, type_: str) -> tuple[str, dict[str, Any]]:
    ((logical_id, resource),) = cfn.resources(template, type_).items()
    return logical_id, resource


def test_the_endpoint_config_has_no_model_and_scales_instances_from_zero(s2z: Synth) -> None:
    template = s2z.template(QWEN)
    _, config = one(template, "AWS::SageMaker::EndpointConfig")
    props = config["Properties"]
    (variant,) = props["ProductionVariants"]
    # Inference-component endpoints carry no model on the variant.
    assert "ModelName" not in variant
    assert "InitialVariantWeight" not in variant
    assert variant["InstanceType"] == lookup("Qwen3-8B").default_instance_type
    assert variant["InitialInstanceCount"] == 1
    assert variant["ManagedInstanceScaling"] == {
        "Status": "ENABLED",
        "MinInstanceCount": 0,
        "MaxInstanceCount": 2,
    }
    assert variant["RoutingConfig"] == {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}
    assert variant["InferenceAmiVersion"] == lookup("Qwen3-8B").inference_ami_version
    # The role is the config's, since no model names it there.
    (role_id,) = cfn.resources(template, "AWS::IAM::Role")
    assert props["ExecutionRoleArn"] == {"Fn::GetAtt": [role_id, "Arn"]}

    _, endpoint = one(template, "AWS::SageMaker::Endpoint")
    assert endpoint["Properties"]["EndpointName"] == "emd-qwen3-8b-dev"


def test_the_model_is_an_inference_component_with_its_requirements(s2z: Synth) -> None:
    for stack, model_id in ((QWEN, "Qwen3-8B"), (BGE, "bge-m3")):
        template = s2z.template(stack)
        catalog = lookup(model_id)
        instance = INSTANCE_TYPES[catalog.default_instance_type]
        component_id, component = one(template, "AWS::SageMaker::InferenceComponent")
        props = component["Properties"]
        endpoint_id, _ = one(template, "AWS::SageMaker::Endpoint")
        model_id_, _ = one(template, "AWS::SageMaker::Model")
        name = stack.removeprefix("EMD-Model-").lower()
        assert props["InferenceComponentName"] == f"emd-{name}"
        # By reference: created after its endpoint, deleted before it.
        assert props["EndpointName"] == {"Fn::GetAtt": [endpoint_id, "EndpointName"]}
        assert props["VariantName"] == "AllTraffic"
        assert props["RuntimeConfig"] == {"CopyCount": 1}
        spec = props["Specification"]
        assert spec["ModelName"] == {"Fn::GetAtt": [model_id_, "ModelName"]}
        assert spec["ComputeResourceRequirements"] == {
            "NumberOfAcceleratorDevicesRequired": instance.gpus,
            "MinMemoryRequiredInMb": catalog.component_memory_mb,
        }
        assert spec["StartupParameters"] == {
            "ContainerStartupHealthCheckTimeoutInSeconds": catalog.startup_health_check_timeout,
            "ModelDataDownloadTimeoutInSeconds": catalog.model_download_timeout,
        }
        outputs = {k: v["Value"] for k, v in template["Outputs"].items()}
        assert outputs["InferenceComponentName"] == props["InferenceComponentName"]
        assert outputs["EndpointName"] == props["InferenceComponentName"]
        # Its container logs go to a group of its own, retained like the endpoint's.
        groups = {
            r["Properties"]["LogGroupName"]: r
            for r in cfn.resources(template, "AWS::Logs::LogGroup").values()
        }
        component_group = groups[f"/aws/sagemaker/InferenceComponents/emd-{name}"]
        assert component_group["DeletionPolicy"] == "Retain"
        assert component_id


def test_copies_scale_from_zero_with_target_tracking_and_a_wake_alarm(s2z: Synth) -> None:
    template = s2z.template(QWEN)
    target_id, target = one(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    props = target["Properties"]
    assert props["ServiceNamespace"] == "sagemaker"
    assert props["ResourceId"] == "inference-component/emd-qwen3-8b-dev"
    assert props["ScalableDimension"] == "sagemaker:inference-component:DesiredCopyCount"
    assert (props["MinCapacity"], props["MaxCapacity"]) == (0, 2)
    component_id, _ = one(template, "AWS::SageMaker::InferenceComponent")
    assert component_id in target["DependsOn"]

    policies = cfn.resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    by_type = {p["Properties"]["PolicyType"]: (k, p["Properties"]) for k, p in policies.items()}
    assert set(by_type) == {"TargetTrackingScaling", "StepScaling"}
    _, tracking = by_type["TargetTrackingScaling"]
    config = tracking["TargetTrackingScalingPolicyConfiguration"]
    assert config["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerInferenceComponentInvocationsPerCopy"
    }
    assert config["TargetValue"] == lookup("Qwen3-8B").invocations_per_instance_target
    assert config["ScaleInCooldown"] == 30 * 60  # idle_minutes
    assert tracking["ScalingTargetId"] == {"Ref": target_id}

    step_id, step = by_type["StepScaling"]
    assert step["ScalingTargetId"] == {"Ref": target_id}
    step_config = step["StepScalingPolicyConfiguration"]
    # Exactly one copy: +1 would climb a copy a minute while a wake keeps failing
    # requests (the alarm re-runs its action), and double the gateway's own wake.
    assert step_config["AdjustmentType"] == "ExactCapacity"
    assert step_config["MetricAggregationType"] == "Maximum"
    assert step_config["Cooldown"] == 60
    assert step_config["StepAdjustments"] == [
        {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}
    ]

    (alarm,) = cfn.resources(template, "AWS::CloudWatch::Alarm").values()
    alarm_props = alarm["Properties"]
    assert alarm_props["Namespace"] == "AWS/SageMaker"
    assert alarm_props["MetricName"] == "NoCapacityInvocationFailures"
    assert alarm_props["Dimensions"] == [
        {"Name": "InferenceComponentName", "Value": "emd-qwen3-8b-dev"}
    ]
    assert (alarm_props["Statistic"], alarm_props["Period"]) == ("Sum", 60)
    assert (alarm_props["EvaluationPeriods"], alarm_props["DatapointsToAlarm"]) == (1, 1)
    # One failed request (Sum > 0) wakes the model.
    assert alarm_props["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm_props["Threshold"] == 0
    assert alarm_props["AlarmActions"] == [{"Ref": step_id}]


def test_a_component_endpoint_registers_no_variant_scaling(s2z: Synth) -> None:
    """Only the component's copy count is registered: the variant's instances are
    SageMaker's managed instance scaling, not Application Auto Scaling's (issue 16:
    a registered variant refuses instance-type updates)."""
    for stack in (QWEN, BGE):
        for target in cfn.resources(
            s2z.template(stack), "AWS::ApplicationAutoScaling::ScalableTarget"
        ).values():
            assert target["Properties"]["ResourceId"].startswith("inference-component/")


def component_arn(name: str) -> str:
    return f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:inference-component/{name}"


def endpoint_arn(name: str) -> str:
    return f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/{name}"


def sagemaker_grants(template: cfn.Template, role_id: str) -> dict[str, list[str]]:
    grants: dict[str, list[str]] = {}
    for statement in cfn.statements_of_role(template, role_id):
        for action in cfn.actions(statement):
            if action.startswith("sagemaker:"):
                assert statement["Effect"] == "Allow"
                grants.setdefault(action, []).extend(cfn.listify(statement["Resource"]))
    return {k: sorted(v) for k, v in grants.items()}


def test_family_lambdas_may_invoke_and_wake_exactly_their_components(s2z: Synth) -> None:
    qwen, bge, reranker = "emd-qwen3-8b-dev", "emd-bge-m3-dev", "emd-bge-reranker-v2-m3-dev"
    expected = {
        "models": {},
        "chat": {"endpoints": [qwen], "components": [qwen]},
        "embeddings": {"endpoints": [bge], "components": [bge]},
        "rerank": {"endpoints": [reranker], "components": []},
        "invocations": {"endpoints": [qwen, bge, reranker], "components": [qwen, bge]},
        "audio": {},
    }
    by_models = {spec.name: spec.models or "models" for spec in FAMILIES}
    for family, (_, props) in cfn.functions_by_family(s2z.api).items():
        grants = sagemaker_grants(s2z.api, cfn.role_of(props))
        wanted = expected[by_models[family]]
        if not wanted:
            assert grants == {}, family
            continue
        components = [component_arn(n) for n in wanted["components"]]
        assert grants["sagemaker:InvokeEndpoint"] == sorted(
            [endpoint_arn(n) for n in wanted["endpoints"]] + components
        ), family
        if components:
            for action in (
                "sagemaker:UpdateInferenceComponentRuntimeConfig",
                "sagemaker:DescribeInferenceComponent",
            ):
                assert grants[action] == sorted(components), (family, action)
        else:  # a family without scale-to-zero models gets no control-plane action
            assert set(grants) == {"sagemaker:InvokeEndpoint"}, family


def test_the_registry_names_the_component_and_its_wake_estimate(s2z: Synth, multi: Synth) -> None:
    entries = {e.id: e for e in Registry.from_json(s2z.config.registry_json()).entries()}
    assert entries["Qwen3-8B/dev"].inference_component == "emd-qwen3-8b-dev"
    assert entries["Qwen3-8B/dev"].wake_seconds == lookup("Qwen3-8B").wake_seconds
    assert entries["bge-m3/dev"].inference_component == "emd-bge-m3-dev"
    assert entries["bge-m3/dev"].wake_seconds == lookup("bge-m3").wake_seconds
    assert entries["bge-reranker-v2-m3/dev"].inference_component is None
    assert entries["bge-reranker-v2-m3/dev"].wake_seconds is None
    # The registry is in the Lambda code asset (its hash covers it): a context that
    # turns scale_to_zero on ships another bundle.
    plain = load({"emd:models": [{"id": m["id"]} for m in S2Z_MODELS]}.get)
    assert asset_hash(s2z.config.registry_json(), LAMBDA_TARGET) != asset_hash(
        plain.registry_json(), LAMBDA_TARGET
    )
    raw = json.loads(s2z.config.registry_json())
    assert [e["inference_component"] for e in raw] == ["emd-qwen3-8b-dev", "emd-bge-m3-dev", None]


def test_a_plain_model_stack_is_unchanged_beside_scale_to_zero_models(
    s2z: Synth, multi: Synth
) -> None:
    assert s2z.template(RERANKER) == multi.template(RERANKER)
    template = s2z.template(RERANKER)
    assert cfn.resources(template, "AWS::SageMaker::InferenceComponent") == {}
    assert "InferenceComponentName" not in template["Outputs"]


def test_cdk_nag_is_clean(s2z: Synth) -> None:
    report = s2z.validation_report()
    violations = [v for p in report["pluginReports"] for v in p.get("violations", [])]
    assert violations == [], json.dumps(violations, indent=1)[:3000]


def test_cfn_lint_passes_on_the_component_templates(s2z: Synth) -> None:
    """cfn-lint checks the resource schemas offline (the component's properties, the
    variant without a model, the alarm and policies)."""
    files = [str(f) for f in s2z.template_files()]
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), "--ignore-checks", *CFN_LINT_IGNORED, "--", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"id": "bge-m3", "scale_to_zero": "yes"}, "must be true, false or an object"),
        ({"id": "bge-m3", "scale_to_zero": 1}, "must be true, false or an object"),
        ({"id": "bge-m3", "scale_to_zero": {"idle": 5}}, "scale_to_zero.idle: Extra inputs"),
        ({"id": "bge-m3", "scale_to_zero": {"idle_minutes": 2}}, "greater than or equal to 5"),
        ({"id": "bge-m3", "scale_to_zero": {"idle_minutes": "15"}}, "valid integer"),
        ({"id": "bge-m3", "scale_to_zero": {"max_copies": 0}}, "greater than or equal to 1"),
        ({"id": "bge-m3", "scale_to_zero": {"max_copies": True}}, "valid integer"),
        (
            {"id": "bge-m3", "scale_to_zero": True, "max_capacity": 3},
            "max_capacity do not apply with scale_to_zero",
        ),
        (
            {"id": "bge-m3", "scale_to_zero": True, "min_capacity": 1},
            "min_capacity do not apply with scale_to_zero",
        ),
    ],
)
def test_bad_scale_to_zero_options_fail_with_a_clear_message(
    entry: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=r"emd:models\[0\]") as raised:
        load({"emd:models": [entry]}.get)
    assert message in str(raised.value)


def test_scale_to_zero_is_off_by_default_and_takes_defaults_when_true() -> None:
    config = load(
        {
            "emd:models": json.dumps(
                [
                    {"id": "bge-m3"},
                    {"id": "Qwen3-8B", "scale_to_zero": True},
                    {"id": "bge-reranker-v2-m3", "scale_to_zero": False},
                ]
            )
        }.get
    )
    plain, s2z, off = config.models
    assert plain.scale_to_zero is None and plain.inference_component is None
    assert off.scale_to_zero is None
    assert s2z.scale_to_zero is not None
    assert (s2z.scale_to_zero.idle_minutes, s2z.scale_to_zero.max_copies) == (15, 1)
    assert s2z.inference_component == s2z.endpoint_name
    # What `emd doctor` prices at rest (0 instances) and checks the GPU quota for.
    assert (s2z.min_capacity, s2z.max_capacity) == (0, 1)
    assert (plain.min_capacity, plain.max_capacity) == (1, 1)
    assert config.components_of("chat") == ["emd-qwen3-8b-dev"]
    assert config.components_of("embeddings") == []
