"""One family Lambda: the emd_proxy ASGI app under the Lambda Web Adapter.

The adapter layer's `/opt/bootstrap` (the exec wrapper) starts `run.sh`, which runs
uvicorn; the adapter then streams each invoke's response from the app
(`AWS_LWA_INVOKE_MODE=response_stream`). The role is the function's own, with
nothing attached but what the stack grants (its log group, X-Ray, the API key
secret and its family's endpoints).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from ..bundling import (
    HANDLER,
    LAMBDA_ARCHITECTURE,
    LAMBDA_RUNTIME,
    LAMBDA_TARGET,
    LAMBDA_TARGET_X86,
    LAMBDA_TASK_ROOT,
    REGISTRY_FILE,
    Target,
)
from ..config import ConfigError

APP_PORT = 8080


@dataclass(frozen=True)
class AdapterLayer:
    """One published Lambda Web Adapter layer, and the Lambda architecture (and bundle
    target) it runs on."""

    account: str
    name: str
    version: int
    architecture: lambda_.Architecture
    target: Target

    def arn(self, partition: str, region: str) -> str:
        return f"arn:{partition}:lambda:{region}:{self.account}:layer:{self.name}:{self.version}"


# The adapter ships as public layers only (no PyPI or npm package carries its binary,
# and synth has no other way to fetch its release), so each partition gets the layer
# the adapter's docs list for it (awslabs/aws-lambda-web-adapter, README.md and
# docs/guide/src/getting-started/zip-packages.md):
# - aws: account 753240598075 in every commercial region, LambdaAdapterLayerArm64:30
#   (the version its README lists now).
# - aws-cn: one account per region and x86_64 layers only, LambdaAdapterLayerX86:26
#   (the newest China ARNs the docs list, at v1.0.0), so there the Lambdas run x86_64.
# - aws-us-gov (and the isolated partitions): no layer is published; synth refuses.
COMMERCIAL_ADAPTER = AdapterLayer(
    account="753240598075",
    name="LambdaAdapterLayerArm64",
    version=30,
    architecture=LAMBDA_ARCHITECTURE,
    target=LAMBDA_TARGET,
)
CHINA_ADAPTERS: dict[str, AdapterLayer] = {
    region: AdapterLayer(
        account=account,
        name="LambdaAdapterLayerX86",
        version=26,
        architecture=lambda_.Architecture.X86_64,
        target=LAMBDA_TARGET_X86,
    )
    for region, account in (("cn-north-1", "041581134020"), ("cn-northwest-1", "069767869989"))
}
# Regions known to have no arm64 adapter layer in account 753240598075: what an
# env-agnostic template (region unknown at synth) refuses with a CloudFormation rule.
NO_COMMERCIAL_ADAPTER = (*sorted(CHINA_ADAPTERS), "us-gov-east-1", "us-gov-west-1")


def adapter_layer(region: str) -> AdapterLayer:
    """The layer for a region known at synth, or a ConfigError that says why none fits."""
    if region.startswith("cn-"):
        if region not in CHINA_ADAPTERS:
            raise ConfigError(
                f"region {region}: the Lambda Web Adapter layer is published in the China "
                f"regions {', '.join(sorted(CHINA_ADAPTERS))} only"
            )
        return CHINA_ADAPTERS[region]
    if region.startswith("us-gov-") or region.startswith("us-iso"):
        raise ConfigError(
            f"region {region}: AWS GovCloud (US) and the isolated regions are not supported: "
            "the Lambda Web Adapter, which streams the API's answers, publishes no layer "
            "there. Deploy the API stack in a commercial or China region."
        )
    return COMMERCIAL_ADAPTER


class AdapterChoice:
    """The adapter layer ARN and the architecture for `stack`: from `adapter_layer`
    when the region is known at synth; otherwise the commercial arm64 layer in the
    deploying region, with a CloudFormation rule that refuses the regions where it does
    not exist (China needs x86_64, decided at synth: give synth the region)."""

    def __init__(self, stack: cdk.Stack) -> None:
        region = stack.region
        if not cdk.Token.is_unresolved(region):
            self.layer = adapter_layer(region)
            self.arn = self.layer.arn(stack.partition, region)
            return
        self.layer = COMMERCIAL_ADAPTER
        self.arn = self.layer.arn(cdk.Aws.PARTITION, cdk.Aws.REGION)
        cdk.CfnRule(
            stack,
            "WebAdapterRegion",
            assertions=[
                cdk.CfnRuleAssertion(
                    assert_=cdk.Fn.condition_not(
                        cdk.Fn.condition_contains(list(NO_COMMERCIAL_ADAPTER), cdk.Aws.REGION)
                    ),
                    assert_description=(
                        "This template uses the Lambda Web Adapter's arm64 layer, which is "
                        "published in the commercial regions only. For the China regions "
                        "(x86_64 layers) synthesize with the region set (CDK_DEFAULT_REGION "
                        "or your AWS profile's region); AWS GovCloud (US) has no layer."
                    ),
                )
            ],
        )


def adapter_environment() -> dict[str, str]:
    return {
        "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap",
        # Any other value silently buffers whole responses.
        "AWS_LWA_INVOKE_MODE": "response_stream",
        "PORT": str(APP_PORT),
        "AWS_LWA_READINESS_CHECK_PATH": "/health",
        # A cold start that needs more than Lambda's 10 s init window finishes its
        # readiness check inside the first invoke instead of being restarted.
        "AWS_LWA_ASYNC_INIT": "true",
    }


class ProxyFunction(Construct):
    """The Lambda of one endpoint family, with its own role and log group."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        family: str,
        code: lambda_.Code,
        layer: lambda_.ILayerVersion,
        architecture: lambda_.Architecture,
        secret_id: str,
        timeout: cdk.Duration,
        memory_size: int,
        reserved_concurrency: int | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.family = family
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"EMD gateway Lambda for the {family} routes",
        )
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        # Only this log group, instead of AWSLambdaBasicExecutionRole's logs:* on "*".
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"EMD gateway: {family} routes",
            runtime=LAMBDA_RUNTIME,
            architecture=architecture,
            handler=HANDLER,
            code=code,
            layers=[layer],
            role=self.role,
            log_group=self.log_group,
            timeout=timeout,
            memory_size=memory_size,
            reserved_concurrent_executions=reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            environment={
                **adapter_environment(),
                "EMD_REGISTRY_FILE": f"{LAMBDA_TASK_ROOT}/{REGISTRY_FILE}",
                "EMD_API_KEY_SECRET_ID": secret_id,
                "EMD_FAMILIES": family,
                "POWERTOOLS_SERVICE_NAME": "emd-proxy",
                **(environment or {}),
            },
        )
        cdk.Validations.of(self.function).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-L1",
                reason="python3.13, one below the newest runtime, on purpose: its bundle "
                "carries bytecode compiled at synth by a Python 3.13 (3.14 interpreters are "
                "rare on build machines), which takes a cold start's imports from 1.1 s to "
                "0.5 s (infra/bundling.py).",
            )
        )

    def allow_invoke_endpoints(
        self, endpoint_arns: Sequence[str], component_arns: Sequence[str] = ()
    ) -> None:
        """`sagemaker:InvokeEndpoint` (both invoke calls need it) on exactly these
        endpoints, and on the inference components invoked through them."""
        if not endpoint_arns:
            return
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:InvokeEndpoint"],
                resources=[*endpoint_arns, *component_arns],
            )
        )

    def allow_wake_components(self, component_arns: Sequence[str]) -> None:
        """Waking a scale-to-zero model: set its component's copy count and read its
        status, on exactly these components."""
        if not component_arns:
            return
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:UpdateInferenceComponentRuntimeConfig",
                    "sagemaker:DescribeInferenceComponent",
                ],
                resources=list(component_arns),
            )
        )
