"""Several models sharing one instance (`emd:endpoints`, issue 18): the group's endpoint
stack (variant without a model, managed instance scaling, its role and retained log
group), each member's inference component on it by name with its own GPUs and scaling,
the member stacks' deploy-order dependency on the endpoint stack (no exports), the
family Lambdas' IAM, the registry, and every ConfigError of the option."""

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
from infra.catalog import lookup
from infra.config import ConfigError, load
from tests.infra import cfn
from tests.infra.synth import Synth
from tests.infra.test_checks import CFN_LINT_IGNORED
from tests.infra.test_scale_to_zero import component_arn, endpoint_arn, one, sagemaker_grants

GROUPS = {"shared-small": {"instance_type": "ml.g5.12xlarge", "max_instances": 2}}
MODELS = [
    {
        "id": "bge-m3",
        "endpoint": "shared-small",
        "scale_to_zero": {"idle_minutes": 20, "max_copies": 2},
    },
    {"id": "bge-reranker-v2-m3", "endpoint": "shared-small"},
    # A model on its own endpoint beside them, as in the `multi` context.
    {"id": "Qwen3-8B", "tag": "dev"},
]
SHARED_STACK = "EMD-Endpoint-shared-small"
SHARED = "emd-shared-small-shared"
BGE_STACK, RERANKER_STACK = "EMD-Model-bge-m3-dev", "EMD-Model-bge-reranker-v2-m3-dev"
QWEN_STACK = "EMD-Model-qwen3-8b-dev"
BGE, RERANKER, QWEN = "emd-bge-m3-dev", "emd-bge-reranker-v2-m3-dev", "emd-qwen3-8b-dev"


@pytest.fixture(scope="module")
def shared(make_synth: Callable[..., Synth]) -> Synth:
    return make_synth(models=MODELS, region="us-east-1", context={"emd:endpoints": GROUPS})


def outputs(template: cfn.Template) -> dict[str, Any]:
    return {k: v["Value"] for k, v in template.get("Outputs", {}).items()}


def test_one_stack_per_group_beside_the_model_stacks(shared: Synth) -> None:
    assert shared.stack_names() == sorted(
        ["EMD-API", SHARED_STACK, BGE_STACK, RERANKER_STACK, QWEN_STACK]
    )


def test_the_endpoint_stack_holds_the_shared_endpoint(shared: Synth) -> None:
    template = shared.template(SHARED_STACK)
    _, config = one(template, "AWS::SageMaker::EndpointConfig")
    props = config["Properties"]
    (variant,) = props["ProductionVariants"]
    assert "ModelName" not in variant
    assert variant["InstanceType"] == "ml.g5.12xlarge"
    assert variant["InitialInstanceCount"] == 1
    # A member scales to zero, so the instances may too; up to max_instances.
    assert variant["ManagedInstanceScaling"] == {
        "Status": "ENABLED",
        "MinInstanceCount": 0,
        "MaxInstanceCount": 2,
    }
    assert variant["RoutingConfig"] == {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}
    assert variant["InferenceAmiVersion"] == lookup("bge-m3").inference_ami_version
    (role_id,) = cfn.resources(template, "AWS::IAM::Role")
    assert props["ExecutionRoleArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
    _, endpoint = one(template, "AWS::SageMaker::Endpoint")
    assert endpoint["Properties"]["EndpointName"] == SHARED
    (group,) = cfn.resources(template, "AWS::Logs::LogGroup").values()
    assert group["Properties"]["LogGroupName"] == f"/aws/sagemaker/Endpoints/{SHARED}"
    assert group["DeletionPolicy"] == "Retain"
    # The members are in their own stacks.
    for type_ in ("AWS::SageMaker::Model", "AWS::SageMaker::InferenceComponent"):
        assert cfn.resources(template, type_) == {}
    assert outputs(template) == {
        "EndpointName": SHARED,
        "InstanceType": "ml.g5.12xlarge",
        "MaxInstances": "2",
        "Members": "bge-m3/dev,bge-reranker-v2-m3/dev",
    }
    # The role writes the endpoint's logs and may pull the members' image (TEI).
    statements = cfn.statements_of_role(template, role_id)
    pulls = [s for s in statements if "ecr:BatchGetImage" in cfn.actions(s)]
    assert [cfn.listify(s["Resource"]) for s in pulls] == [
        ["arn:aws:ecr:us-east-1:683313688378:repository/tei"]
    ]


def test_each_member_is_a_component_on_the_shared_endpoint_by_name(shared: Synth) -> None:
    for stack, model_id, name in (
        (BGE_STACK, "bge-m3", BGE),
        (RERANKER_STACK, "bge-reranker-v2-m3", RERANKER),
    ):
        template = shared.template(stack)
        catalog = lookup(model_id)
        _, component = one(template, "AWS::SageMaker::InferenceComponent")
        props = component["Properties"]
        model_logical, model = one(template, "AWS::SageMaker::Model")
        assert props["InferenceComponentName"] == name
        # A literal name, not an import: either stack can be deleted on its own.
        assert props["EndpointName"] == SHARED
        assert props["VariantName"] == "AllTraffic"
        assert props["RuntimeConfig"] == {"CopyCount": 1}
        spec = props["Specification"]
        assert spec["ModelName"] == {"Fn::GetAtt": [model_logical, "ModelName"]}
        # One whole GPU of the four (TEI runs on one; components never share a GPU).
        assert spec["ComputeResourceRequirements"] == {
            "NumberOfAcceleratorDevicesRequired": 1,
            "MinMemoryRequiredInMb": catalog.component_memory_mb,
        }
        # Its own execution role, as every Model has.
        (role_id,) = cfn.resources(template, "AWS::IAM::Role")
        assert model["Properties"]["ExecutionRoleArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
        for type_ in ("AWS::SageMaker::Endpoint", "AWS::SageMaker::EndpointConfig"):
            assert cfn.resources(template, type_) == {}
        (group,) = cfn.resources(template, "AWS::Logs::LogGroup").values()
        assert group["Properties"]["LogGroupName"] == f"/aws/sagemaker/InferenceComponents/{name}"
        assert group["DeletionPolicy"] == "Retain"
        out = outputs(template)
        assert out["EndpointName"] == SHARED
        assert out["InferenceComponentName"] == name
        assert out["InstanceType"] == "ml.g5.12xlarge"


def test_a_vllm_member_shards_over_its_own_gpus_only(make_synth: Callable[..., Synth]) -> None:
    """Tensor parallelism follows the member's GPUs, not the instance's four."""
    synthesized = make_synth(
        models=[
            {"id": "Qwen3-4B-Instruct-2507", "endpoint": "chat"},
            {"id": "Qwen2.5-7B-Instruct", "endpoint": "chat"},
        ],
        region="us-east-1",
        context={"emd:endpoints": {"chat": {"instance_type": "ml.g5.12xlarge"}}},
    )
    small, lmi = synthesized.config.models
    assert (small.accelerators, lmi.accelerators) == (1, 1)
    envs = {}
    for stack in ("EMD-Model-qwen3-4b-instruct-2507-dev", "EMD-Model-qwen2-5-7b-instruct-dev"):
        template = synthesized.template(stack)
        _, model = one(template, "AWS::SageMaker::Model")
        envs[stack] = model["Properties"]["PrimaryContainer"]["Environment"]
        _, component = one(template, "AWS::SageMaker::InferenceComponent")
        requirements = component["Properties"]["Specification"]["ComputeResourceRequirements"]
        assert requirements["NumberOfAcceleratorDevicesRequired"] == 1
    assert envs["EMD-Model-qwen3-4b-instruct-2507-dev"]["SM_VLLM_TENSOR_PARALLEL_SIZE"] == "1"
    assert envs["EMD-Model-qwen2-5-7b-instruct-dev"]["OPTION_TENSOR_PARALLEL_DEGREE"] == "1"
    (group,) = synthesized.config.endpoints
    assert synthesized.config.members_of(group) == [small, lmi]
    # No member scales to zero: one instance stays.
    _, config = one(synthesized.template("EMD-Endpoint-chat"), "AWS::SageMaker::EndpointConfig")
    (variant,) = config["Properties"]["ProductionVariants"]
    assert variant["ManagedInstanceScaling"] == {
        "Status": "ENABLED",
        "MinInstanceCount": 1,
        "MaxInstanceCount": 1,
    }
    assert variant["InferenceAmiVersion"] == lookup("Qwen3-4B-Instruct-2507").inference_ami_version
    # A 14B model needs the four 24 GB GPUs it runs on elsewhere (ml.g5.12xlarge).
    big = load(
        {
            "emd:endpoints": {"big": {"instance_type": "ml.g5.12xlarge"}},
            "emd:models": [{"id": "Qwen2.5-14B-Instruct", "endpoint": "big"}],
        }.get
    ).models[0]
    assert big.accelerators == 4


def test_each_member_scales_on_its_own(shared: Synth) -> None:
    template = shared.template(BGE_STACK)
    target_id, target = one(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    props = target["Properties"]
    assert props["ResourceId"] == f"inference-component/{BGE}"
    assert props["ScalableDimension"] == "sagemaker:inference-component:DesiredCopyCount"
    assert (props["MinCapacity"], props["MaxCapacity"]) == (0, 2)
    policies = cfn.resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    by_type = {p["Properties"]["PolicyType"]: p["Properties"] for p in policies.values()}
    assert set(by_type) == {"TargetTrackingScaling", "StepScaling"}
    tracking = by_type["TargetTrackingScaling"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["ScaleInCooldown"] == 20 * 60
    assert tracking["TargetValue"] == lookup("bge-m3").invocations_per_instance_target
    (alarm,) = cfn.resources(template, "AWS::CloudWatch::Alarm").values()
    assert alarm["Properties"]["Dimensions"] == [{"Name": "InferenceComponentName", "Value": BGE}]
    assert target_id
    # Without scale_to_zero a member keeps its one copy: nothing to scale, nothing to wake.
    template = shared.template(RERANKER_STACK)
    for type_ in (
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::CloudWatch::Alarm",
    ):
        assert cfn.resources(template, type_) == {}, type_


def test_member_stacks_depend_on_the_endpoint_stack_without_exports(shared: Synth) -> None:
    manifest = json.loads((shared.outdir / "manifest.json").read_text())
    depends = {
        name: [d for d in artifact.get("dependencies", []) if not d.endswith(".assets")]
        for name, artifact in manifest["artifacts"].items()
        if artifact.get("type") == "aws:cloudformation:stack"
    }
    assert depends[BGE_STACK] == [SHARED_STACK]
    assert depends[RERANKER_STACK] == [SHARED_STACK]
    assert depends[QWEN_STACK] == []
    assert depends[SHARED_STACK] == []
    for path in shared.template_files():
        text = path.read_text()
        assert "Fn::ImportValue" not in text, path.name
        assert '"Export"' not in text, path.name


def test_family_lambdas_may_invoke_the_shared_endpoint_and_wake_only_scaling_members(
    shared: Synth,
) -> None:
    expected = {
        "models": {},
        "chat": {"endpoints": [QWEN], "components": [], "wake": []},
        "embeddings": {"endpoints": [SHARED], "components": [BGE], "wake": [BGE]},
        "rerank": {"endpoints": [SHARED], "components": [RERANKER], "wake": []},
        # The shared endpoint once, though two members serve the family.
        "invocations": {
            "endpoints": [SHARED, QWEN],
            "components": [BGE, RERANKER],
            "wake": [BGE],
        },
        "audio": {},
    }
    by_models = {spec.name: spec.models or "models" for spec in FAMILIES}
    for family, (_, props) in cfn.functions_by_family(shared.api).items():
        grants = sagemaker_grants(shared.api, cfn.role_of(props))
        wanted = expected[by_models[family]]
        if not wanted:
            assert grants == {}, family
            continue
        invoke = grants.pop("sagemaker:InvokeEndpoint")
        assert invoke == sorted(
            [endpoint_arn(n) for n in wanted["endpoints"]]
            + [component_arn(n) for n in wanted["components"]]
        ), family
        wake = sorted(component_arn(n) for n in wanted["wake"])
        expected_wake = (
            {
                "sagemaker:UpdateInferenceComponentRuntimeConfig": wake,
                "sagemaker:DescribeInferenceComponent": wake,
            }
            if wake
            else {}
        )
        assert grants == expected_wake, family


def test_the_registry_names_the_shared_endpoint_and_each_component(shared: Synth) -> None:
    entries = {e.id: e for e in Registry.from_json(shared.config.registry_json()).entries()}
    bge, reranker, qwen = (
        entries["bge-m3/dev"],
        entries["bge-reranker-v2-m3/dev"],
        entries["Qwen3-8B/dev"],
    )
    assert (bge.endpoint, bge.inference_component) == (SHARED, BGE)
    assert bge.wake_seconds == lookup("bge-m3").wake_seconds
    assert (reranker.endpoint, reranker.inference_component) == (SHARED, RERANKER)
    assert reranker.wake_seconds is None  # always one copy: never woken
    assert (qwen.endpoint, qwen.inference_component) == (QWEN, None)


def test_the_plain_model_stack_is_unchanged_beside_a_shared_endpoint(
    shared: Synth, multi: Synth
) -> None:
    assert shared.template(QWEN_STACK) == multi.template(QWEN_STACK)


def test_cdk_nag_is_clean(shared: Synth) -> None:
    report = shared.validation_report()
    violations = [v for p in report["pluginReports"] for v in p.get("violations", [])]
    assert violations == [], json.dumps(violations, indent=1)[:3000]


def test_cfn_lint_passes_on_the_shared_templates(shared: Synth) -> None:
    files = [str(f) for f in shared.template_files()]
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), "--ignore-checks", *CFN_LINT_IGNORED, "--", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_unknown_region_maps_the_members_images(make_synth: Callable[..., Synth]) -> None:
    """Region unknown at synth: the endpoint role's image grant goes through the
    region mapping, like a model's."""
    agnostic = make_synth(models=MODELS[:2], region=None, context={"emd:endpoints": GROUPS})
    template = agnostic.template(SHARED_STACK)
    assert "Mappings" in template and "Rules" in template


SMALL = {"instance_type": "ml.g5.12xlarge"}


@pytest.mark.parametrize(
    ("endpoints", "models", "message"),
    [
        (
            {"a": SMALL},
            [{"id": "bge-m3", "endpoint": "b"}],
            "emd:models[0]: endpoint 'b' is not a group of emd:endpoints; groups: a",
        ),
        (
            None,
            [{"id": "bge-m3", "endpoint": "b"}],
            "endpoint 'b' is not a group of emd:endpoints; groups: none",
        ),
        (
            {"a": SMALL, "empty": SMALL},
            [{"id": "bge-m3", "endpoint": "a"}],
            'emd:endpoints.empty: no model names it; add "endpoint": "empty"',
        ),
        (
            {"a": SMALL},
            [
                {"id": "Qwen2.5-14B-Instruct", "endpoint": "a"},
                {"id": "Qwen3-4B-Instruct-2507", "endpoint": "a"},
            ],
            "emd:endpoints.a: its members need 5 GPUs (Qwen2.5-14B-Instruct/dev 4, "
            "Qwen3-4B-Instruct-2507/dev 1), more than the 4 of one ml.g5.12xlarge",
        ),
        (
            {"a": SMALL},
            [{"id": "bge-m3", "endpoint": "a", "instance_type": "ml.g5.xlarge"}],
            "instance_type do not apply with endpoint 'a'",
        ),
        (
            {"a": SMALL},
            [{"id": "bge-m3", "endpoint": "a", "min_capacity": 1}],
            "min_capacity do not apply with endpoint 'a'",
        ),
        (
            {"a": SMALL},
            [{"id": "bge-m3", "endpoint": "a", "max_capacity": 2}],
            "max_capacity do not apply with endpoint 'a'",
        ),
        (
            {"a": {"instance_type": "ml.p4d.24xlarge"}},
            [{"id": "bge-m3", "endpoint": "a"}],
            "emd:endpoints.a: instance type 'ml.p4d.24xlarge' is not in the catalog",
        ),
        (
            {"a": {"instance_type": "ml.g6e.12xlarge"}},
            [{"id": "whisper-large-v3-turbo", "endpoint": "a"}],
            "emd:models[0]: whisper-large-v3-turbo does not run on g6e GPUs (ml.g6e.12xlarge)",
        ),
        (
            {"a": SMALL},
            [
                {"id": "bge-m3", "endpoint": "a"},
                {"id": "Qwen3-4B-Instruct-2507", "endpoint": "a"},
            ],
            "emd:endpoints.a: its members need different host AMIs",
        ),
        (
            {"a": SMALL},
            [{"id": "bge-m3", "endpoint": "a", "scale_to_zero": {"max_copies": 5}}],
            "bge-m3/dev's scale_to_zero.max_copies 5 need 5 GPUs, more than 1 ml.g5.12xlarge",
        ),
        ({"a": {}}, [], "emd:endpoints.a: instance_type: Field required"),
        ({"a": {**SMALL, "max_instances": 0}}, [], "greater than or equal to 1"),
        ({"a": {**SMALL, "min_instances": 0}}, [], "min_instances: Extra inputs"),
        ({"a b": SMALL}, [], "emd:endpoints.a b: a group name is 1-32 letters"),
        (["a"], [], "emd:endpoints must be an object like"),
        ("{not json", [], "emd:endpoints is not valid JSON"),
    ],
)
def test_bad_shared_endpoints_fail_with_a_clear_message(
    endpoints: Any, models: list[dict[str, Any]], message: str
) -> None:
    context = {"emd:endpoints": endpoints, "emd:models": models}
    with pytest.raises(ConfigError) as raised:
        load(context.get)
    assert message in str(raised.value)


def test_endpoints_as_a_json_string_and_the_names() -> None:
    config = load(
        {
            "emd:prefix": "Team1",
            "emd:endpoints": json.dumps({"Small-1": SMALL}),
            "emd:models": json.dumps([{"id": "bge-m3", "endpoint": "Small-1"}]),
        }.get
    )
    (group,) = config.endpoints
    assert group.stack_name == "Team1-Endpoint-small-1"
    assert group.endpoint_name == "team1-small-1-shared"
    assert (
        len(
            load(
                {
                    "emd:prefix": "P" * 32,
                    "emd:endpoints": {"g" * 32: SMALL},
                    "emd:models": [{"id": "bge-m3", "endpoint": "g" * 32}],
                }.get
            )
            .endpoints[0]
            .endpoint_name
        )
        <= 63
    )
