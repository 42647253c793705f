"""One family Lambda: the emd_proxy ASGI app under the Lambda Web Adapter.

The adapter layer's `/opt/bootstrap` (the exec wrapper) starts `run.sh`, which runs
uvicorn; the adapter then streams each invoke's response from the app
(`AWS_LWA_INVOKE_MODE=response_stream`). The role is the function's own, with
nothing attached but what the stack grants (its log group, X-Ray, the API key
secret and its family's endpoints).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from ..bundling import (
    HANDLER,
    LAMBDA_ARCHITECTURE,
    LAMBDA_RUNTIME,
    LAMBDA_TASK_ROOT,
    REGISTRY_FILE,
)

# Lambda Web Adapter, pinned (its README lists version 30 for the arm64 layer).
ADAPTER_LAYER_ACCOUNT = "753240598075"
ADAPTER_LAYER_NAME = "LambdaAdapterLayerArm64"
ADAPTER_LAYER_VERSION = 30
APP_PORT = 8080


def adapter_layer_arn(stack: cdk.Stack) -> str:
    """The layer in the stack's region (a literal when the region is known at synth)."""
    return (
        f"arn:{stack.partition}:lambda:{stack.region}:{ADAPTER_LAYER_ACCOUNT}:"
        f"layer:{ADAPTER_LAYER_NAME}:{ADAPTER_LAYER_VERSION}"
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
        secret_id: str,
        timeout: cdk.Duration,
        memory_size: int,
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
            architecture=LAMBDA_ARCHITECTURE,
            handler=HANDLER,
            code=code,
            layers=[layer],
            role=self.role,
            log_group=self.log_group,
            timeout=timeout,
            memory_size=memory_size,
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

    def allow_invoke_endpoints(self, endpoint_arns: Sequence[str]) -> None:
        """`sagemaker:InvokeEndpoint` (both invoke calls need it) on exactly these."""
        if not endpoint_arns:
            return
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["sagemaker:InvokeEndpoint"], resources=list(endpoint_arns))
        )
