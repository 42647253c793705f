"""Model stacks as synthesized: endpoint config from the catalog, images per region,
execution role, autoscaling and outputs."""

from __future__ import annotations

from typing import Any

import pytest

from emd_proxy.registry import endpoint_name
from infra.catalog import lookup
from infra.images import DLC_ACCOUNTS, TEI_ACCOUNTS
from tests.infra import cfn
from tests.infra.synth import Synth


def one(template: cfn.Template, type_: str) -> dict[str, Any]:
    (resource,) = cfn.resources(template, type_).values()
    return resource


def variant_of(template: cfn.Template) -> dict[str, Any]:
    (variant,) = one(template, "AWS::SageMaker::EndpointConfig")["Properties"]["ProductionVariants"]
    return variant


def test_one_stack_per_model_with_the_documented_names(multi: Synth, agnostic: Synth) -> None:
    assert multi.stack_names() == [
        "EMD-API",
        "EMD-Model-bge-m3-dev",
        "EMD-Model-bge-reranker-v2-m3-dev",
        "EMD-Model-qwen2-5-7b-instruct-dev",
        "EMD-Model-qwen2-5-coder-7b-instruct-dev",
        "EMD-Model-qwen3-4b-instruct-2507-prod",
        "EMD-Model-qwen3-8b-dev",
        "EMD-Model-whisper-large-v3-turbo-dev",
    ]
    assert agnostic.stack_names() == [
        "Team1-API",
        "Team1-Model-bge-m3-v2",
        "Team1-Model-whisper-large-v3-turbo-dev",
    ]


@pytest.mark.parametrize(
    "stack",
    [
        "EMD-Model-qwen3-8b-dev",
        "EMD-Model-qwen2-5-7b-instruct-dev",
        "EMD-Model-qwen2-5-coder-7b-instruct-dev",
        "EMD-Model-bge-m3-dev",
        "EMD-Model-bge-reranker-v2-m3-dev",
        "EMD-Model-whisper-large-v3-turbo-dev",
    ],
)
def test_endpoint_config_uses_the_catalog(multi: Synth, stack: str) -> None:
    (deployment,) = [m for m in multi.config.models if m.stack_name == stack]
    model = deployment.catalog
    template = multi.template(stack)
    variant = variant_of(template)
    assert variant["InstanceType"] == model.default_instance_type
    assert variant["InitialInstanceCount"] == 1
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == (
        model.startup_health_check_timeout
    )
    assert variant["ModelDataDownloadTimeoutInSeconds"] == model.model_download_timeout
    assert variant["InferenceAmiVersion"] == model.inference_ami_version
    # g4dn/g5/g6/g6e have local NVMe storage: SageMaker rejects VolumeSizeInGB there.
    assert "VolumeSizeInGB" not in variant
    assert variant["RoutingConfig"] == {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}

    container = one(template, "AWS::SageMaker::Model")["Properties"]["PrimaryContainer"]
    assert container["Environment"] == model.container_environment(deployment.instance)
    assert container["Image"] == model.image.uri("us-east-1")  # region known: a literal

    endpoint = one(template, "AWS::SageMaker::Endpoint")["Properties"]
    assert endpoint["EndpointName"] == endpoint_name(model.model, deployment.choice.tag)

    outputs = {k: v["Value"] for k, v in template["Outputs"].items()}
    assert outputs == {
        "ModelId": f"{model.model}/{deployment.choice.tag}",
        "EndpointName": endpoint["EndpointName"],
        "Engine": model.engine,
        "InstanceType": model.default_instance_type,
        "Families": ",".join(model.families),
    }


def test_chosen_instance_type_and_capacity(multi: Synth) -> None:
    template = multi.template("EMD-Model-qwen3-4b-instruct-2507-prod")
    variant = variant_of(template)
    assert variant["InstanceType"] == "ml.g5.12xlarge"
    assert variant["InitialInstanceCount"] == 2
    env = one(template, "AWS::SageMaker::Model")["Properties"]["PrimaryContainer"]["Environment"]
    assert env["SM_VLLM_TENSOR_PARALLEL_SIZE"] == "4"  # all four GPUs
    target = one(template, "AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 4)


def test_autoscaling_tracks_invocations_per_instance(multi: Synth) -> None:
    template = multi.template("EMD-Model-qwen3-4b-instruct-2507-prod")
    target = one(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    props = target["Properties"]
    assert props["ServiceNamespace"] == "sagemaker"
    assert props["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert props["ResourceId"] == "endpoint/emd-qwen3-4b-instruct-2507-prod/variant/AllTraffic"
    assert (props["MinCapacity"], props["MaxCapacity"]) == (2, 4)
    assert cfn.join_text(props["RoleARN"]).endswith(
        "/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
    )
    # Registered only once the endpoint (and its variant) exists.
    (endpoint_id,) = cfn.resources(template, "AWS::SageMaker::Endpoint")
    assert endpoint_id in target["DependsOn"]
    policy = one(template, "AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert tracking["TargetValue"] == (
        lookup("Qwen3-4B-Instruct-2507").invocations_per_instance_target
    )
    assert tracking["ScaleInCooldown"] == 600
    assert policy["ScalingTargetId"] == {"Ref": next(iter(cfn.resources(template, target["Type"])))}


def test_execution_role_is_least_privilege(multi: Synth) -> None:
    template = multi.template("EMD-Model-bge-m3-dev")
    (role_id, role) = next(iter(cfn.resources(template, "AWS::IAM::Role").items()))
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "sagemaker.amazonaws.com"
    }
    assert "ManagedPolicyArns" not in role["Properties"]
    statements = cfn.statements_of_role(template, role_id)
    by_action = {a: s for s in statements for a in cfn.actions(s)}
    assert set(by_action) == {
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetAuthorizationToken",
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:DescribeLogStreams",
        "cloudwatch:PutMetricData",
    }
    # Pulls only from TEI's repository in TEI's own us-east-1 account.
    image = lookup("bge-m3").image
    assert by_action["ecr:BatchGetImage"]["Resource"] == (
        f"arn:aws:ecr:us-east-1:{TEI_ACCOUNTS['us-east-1']}:repository/{image.repository}"
    )
    (log_group_id,) = cfn.resources(template, "AWS::Logs::LogGroup")
    assert by_action["logs:PutLogEvents"]["Resource"] == {"Fn::GetAtt": [log_group_id, "Arn"]}
    assert template["Resources"][log_group_id]["Properties"]["LogGroupName"] == (
        "/aws/sagemaker/Endpoints/emd-bge-m3-dev"
    )
    assert by_action["cloudwatch:PutMetricData"]["Condition"] == {
        "StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}
    }
    # No S3, no sagemaker:* and no iam:PassRole.
    assert not any(a.startswith(("s3:", "sagemaker:", "iam:")) for a in by_action)
    # CreateModel checks the image pull with this policy: it must exist first.
    (policy_id,) = cfn.resources(template, "AWS::IAM::Policy")
    model = one(template, "AWS::SageMaker::Model")
    assert policy_id in model["DependsOn"]
    assert model["Properties"]["EnableNetworkIsolation"] is False  # weights from the Hub


def test_unknown_region_resolves_images_through_a_mapping(agnostic: Synth) -> None:
    template = agnostic.template("Team1-Model-bge-m3-v2")
    container = one(template, "AWS::SageMaker::Model")["Properties"]["PrimaryContainer"]
    assert cfn.join_text(container["Image"]) == (
        "{FindInMap}.dkr.ecr.{AWS::Region}.{AWS::URLSuffix}/tei:" + lookup("bge-m3").image.tag
    )
    (mapping,) = template["Mappings"].values()
    # Every region TEI is published in, each with its own account; none other.
    assert mapping == {region: {"account": a} for region, a in TEI_ACCOUNTS.items()}
    assert "ap-southeast-5" not in mapping
    # A region outside the map fails at deploy with a message, not a FindInMap error.
    rule = next(r for name, r in template["Rules"].items() if name != "CheckBootstrapVersion")
    (assertion,) = rule["Assertions"]
    assert assertion["Assert"]["Fn::Contains"][1] == {"Ref": "AWS::Region"}
    assert sorted(assertion["Assert"]["Fn::Contains"][0]) == sorted(mapping)
    assert "is not published in this region" in assertion["AssertDescription"]

    whisper = agnostic.template("Team1-Model-whisper-large-v3-turbo-dev")
    (mapping,) = whisper["Mappings"].values()
    assert mapping == {region: {"account": a} for region, a in DLC_ACCOUNTS.items()}


FIXED_SIZE = [
    "EMD-Model-qwen3-8b-dev",
    "EMD-Model-qwen2-5-7b-instruct-dev",
    "EMD-Model-qwen2-5-coder-7b-instruct-dev",
    "EMD-Model-bge-m3-dev",
    "EMD-Model-bge-reranker-v2-m3-dev",
    "EMD-Model-whisper-large-v3-turbo-dev",
]


@pytest.mark.parametrize("stack", FIXED_SIZE)
def test_a_fixed_size_endpoint_is_not_registered_with_autoscaling(multi: Synth, stack: str) -> None:
    """min = max: no scalable target, else SageMaker refuses every later UpdateEndpoint
    that changes the instance type, and the stack update rolls back."""
    (deployment,) = [m for m in multi.config.models if m.stack_name == stack]
    assert deployment.min_capacity == deployment.max_capacity
    template = multi.template(stack)
    assert cfn.resources(template, "AWS::ApplicationAutoScaling::ScalableTarget") == {}
    assert cfn.resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy") == {}


def test_model_and_endpoint_config_are_replaceable(multi: Synth) -> None:
    """A new image or instance type replaces the Model or the EndpointConfig (each has
    only replacement-requiring properties); a fixed name would make the replacement
    fail. The endpoint then updates in place to the new config, by reference."""
    for stack in ("EMD-Model-qwen3-8b-dev", "EMD-Model-qwen3-4b-instruct-2507-prod"):
        template = multi.template(stack)
        (model_id, model) = next(iter(cfn.resources(template, "AWS::SageMaker::Model").items()))
        configs = cfn.resources(template, "AWS::SageMaker::EndpointConfig")
        (config_id, config) = next(iter(configs.items()))
        assert "ModelName" not in model["Properties"]
        assert "EndpointConfigName" not in config["Properties"]
        (variant,) = config["Properties"]["ProductionVariants"]
        assert variant["ModelName"] == {"Fn::GetAtt": [model_id, "ModelName"]}
        endpoint = one(template, "AWS::SageMaker::Endpoint")["Properties"]
        assert endpoint["EndpointConfigName"] == {"Fn::GetAtt": [config_id, "EndpointConfigName"]}


def test_endpoint_log_group_survives_rollback_and_delete(multi: Synth, agnostic: Synth) -> None:
    for synth, stack, endpoint in (
        (multi, "EMD-Model-qwen3-8b-dev", "emd-qwen3-8b-dev"),
        (agnostic, "Team1-Model-bge-m3-v2", "team1-bge-m3-v2"),
    ):
        template = synth.template(stack)
        (log_group,) = cfn.resources(template, "AWS::Logs::LogGroup").values()
        assert log_group["DeletionPolicy"] == "Retain"
        assert log_group["UpdateReplacePolicy"] == "Retain"
        assert log_group["Properties"]["RetentionInDays"] == 90
        # A literal name (the one SageMaker writes to): `--import-existing-resources`
        # can adopt a group kept by an earlier rollback.
        assert log_group["Properties"]["LogGroupName"] == f"/aws/sagemaker/Endpoints/{endpoint}"
