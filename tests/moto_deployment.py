"""A deployed EMD gateway as moto sees it: the API and model stacks with DESIGN.md's
outputs, the key secret and SageMaker endpoints, plus setters for the states moto
cannot reach through its API (an endpoint Creating or Failed, a stack in
ROLLBACK_COMPLETE), made by editing moto's backend objects in this process."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import boto3
from moto.cloudformation.models import Event, cloudformation_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemaker.models import sagemaker_backends

from emd_proxy.registry import endpoint_name as registry_endpoint_name

REGION = "us-east-1"
BASE_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/v1"
DEFAULT_KEY = "sk-emd-default-0123456789abcdefXy9"
ROLE = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/emd-sagemaker"
# Environment that points a subprocess (or this process) at moto with dummy credentials.
DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}
# Settings that would send boto3 elsewhere (or to the user's real account).
AWS_ENV_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_CLOUDFORMATION",
    "AWS_ENDPOINT_URL_SAGEMAKER",
    "AWS_SECURITY_TOKEN",
)


@dataclass(frozen=True)
class ModelSpec:
    model_id: str  # e.g. Qwen3-8B/dev
    engine: str = "vllm"
    families: tuple[str, ...] = ("chat",)
    instance_type: str = "ml.g4dn.xlarge"  # moto knows g4dn/p3, not g5
    instance_count: int = 1
    with_endpoint: bool = True


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def stack_name(prefix: str, model_id: str) -> str:
    model, _, tag = model_id.partition("/")
    return f"{prefix}-Model-{_slug(model)}-{_slug(tag)}"


def endpoint_name(model_id: str, prefix: str = "EMD") -> str:
    model, _, tag = model_id.partition("/")
    return registry_endpoint_name(model, tag, prefix=prefix)


def template(outputs: dict[str, str]) -> str:
    # moto needs a resource it can create; an SNS topic is the cheapest one it knows.
    return json.dumps(
        {
            "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {k: {"Value": v} for k, v in outputs.items()},
        }
    )


def create_api_stack(prefix: str = "EMD", key: str | None = DEFAULT_KEY) -> str:
    """The API stack and its secret; returns the secret ARN."""
    document = {"default": key} if key else {}
    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=f"{prefix}-api-keys", SecretString=json.dumps(document)
    )
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=f"{prefix}-API",
        TemplateBody=template(
            {
                "BaseURL": BASE_URL,
                "ApiKeySecretArn": secret["ARN"],
                "ApiKeySecretName": secret["Name"],
            }
        ),
    )
    return str(secret["ARN"])


def create_model_stack(spec: ModelSpec, prefix: str = "EMD", outputs: bool = True) -> str:
    endpoint = endpoint_name(spec.model_id, prefix)
    values = {
        "ModelId": spec.model_id,
        "EndpointName": endpoint,
        "Engine": spec.engine,
        "InstanceType": spec.instance_type,
        "Families": ",".join(spec.families),
    }
    name = stack_name(prefix, spec.model_id)
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=name, TemplateBody=template(values if outputs else {})
    )
    if spec.with_endpoint:
        create_endpoint(endpoint, spec.instance_type, spec.instance_count)
    return name


def create_endpoint(endpoint: str, instance_type: str, count: int) -> None:
    sm = boto3.client("sagemaker", region_name=REGION)
    sm.create_model(
        ModelName=endpoint, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "vllm:latest"}
    )
    sm.create_endpoint_config(
        EndpointConfigName=endpoint,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": endpoint,
                "InitialInstanceCount": count,
                "InstanceType": instance_type,
            }
        ],
    )
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)


def deploy(models: list[ModelSpec], prefix: str = "EMD") -> str:
    arn = create_api_stack(prefix)
    for spec in models:
        create_model_stack(spec, prefix)
    return arn


# --- states moto cannot reach through its API -------------------------------------------


def endpoint_object(endpoint: str) -> Any:
    return sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION].endpoints[endpoint]


def set_endpoint(
    endpoint: str,
    status: str,
    reason: str | None = None,
    current: int | None = None,
    desired: int | None = None,
) -> None:
    obj = endpoint_object(endpoint)
    obj.endpoint_status = status
    obj.failure_reason = reason
    for variant in obj.production_variants:
        if current is not None:
            variant["CurrentInstanceCount"] = current
        if desired is not None:
            variant["DesiredInstanceCount"] = desired


def delete_endpoint(endpoint: str) -> None:
    del sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION].endpoints[endpoint]


def stack_object(name: str) -> Any:
    return cloudformation_backends[DEFAULT_ACCOUNT_ID][REGION].get_stack(name)


def set_stack(
    name: str,
    status: str,
    reason: str | None = None,
    failed_resource: tuple[str, str, str] | None = None,
) -> None:
    """`failed_resource`: (logical id, type, reason) of a failed resource event, logged
    after a "User Initiated" start the way CloudFormation logs a failed operation."""
    stack = stack_object(name)
    stack.status = status
    stack.status_reason = reason  # moto serializes it as StackStatusReason
    if failed_resource is not None:
        logical_id, resource_type, why = failed_resource
        stack.events.append(
            _event(
                stack, name, "AWS::CloudFormation::Stack", "UPDATE_IN_PROGRESS", "User Initiated"
            )
        )
        stack.events.append(_event(stack, logical_id, resource_type, "CREATE_FAILED", why))
        stack.events.append(
            _event(stack, "Other", "AWS::IAM::Role", "CREATE_FAILED", "Resource creation cancelled")
        )
        stack.events.append(_event(stack, name, "AWS::CloudFormation::Stack", status, reason))


def _event(
    stack: Any, logical_id: str, resource_type: str, status: str, reason: str | None
) -> Event:
    return Event(
        stack_id=stack.stack_id,
        stack_name=stack.name,
        logical_resource_id=logical_id,
        physical_resource_id="",
        resource_type=resource_type,
        resource_status=status,
        resource_status_reason=reason,
        resource_properties=None,
    )
