"""Per-key limits at API Gateway: the Lambda authorizer and the key-sync Lambda.

- `KeyAuthorizer`: a plain Python Lambda (`emd_proxy.authorizer.handler`, no Web
  Adapter, no FastAPI) behind two REQUEST authorizers. Routes whose clients send
  `Authorization: Bearer` use `bearer`, cached per Authorization header. The Anthropic
  routes (/v1/messages...) use `any_header`: Anthropic's SDKs send `x-api-key`, some
  clients (auth tokens) send a Bearer header instead, and API Gateway refuses a request
  without calling the authorizer when any declared identity source is missing, so that
  authorizer declares none, which API Gateway allows only without caching.
- `KeySync`: `emd_proxy.usage_sync.handler`, which makes the prefix's API Gateway API
  keys and usage plans match the key document: run by a custom resource at every
  deploy that changes its inputs, and by `emd keys` after each write.

Both run from the one shared code asset, each with its own role and log group.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from emd_proxy.auth import KeyLimits

from ..bundling import LAMBDA_RUNTIME

AUTHORIZER_HANDLER = "emd_proxy.authorizer.handler"
SYNC_HANDLER = "emd_proxy.usage_sync.handler"


class PlainFunction(Construct):
    """A Python Lambda of the shared asset run by the managed runtime's own handler
    (no adapter layer), with its own role, log group and X-Ray tracing."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        description: str,
        handler: str,
        code: lambda_.Code,
        architecture: lambda_.Architecture,
        timeout: cdk.Duration,
        memory_size: int,
        environment: Mapping[str, str],
        reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=description,
        )
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=LAMBDA_RUNTIME,
            architecture=architecture,
            handler=handler,
            code=code,
            role=self.role,
            log_group=self.log_group,
            timeout=timeout,
            memory_size=memory_size,
            reserved_concurrent_executions=reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            environment=dict(environment),
        )
        cdk.Validations.of(self.function).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-L1",
                reason="python3.13 like the family Lambdas: the shared bundle's bytecode is "
                "compiled for it (infra/bundling.py).",
            )
        )
        cdk.Validations.of(self.role).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray tracing: xray:PutTraceSegments and "
                "xray:PutTelemetryRecords have no resource-level permissions.",
            )
        )


class KeyAuthorizer(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        prefix: str,
        code: lambda_.Code,
        architecture: lambda_.Architecture,
        secret: secretsmanager.ISecret,
        cache_seconds: int,
        reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.lambda_ = PlainFunction(
            self,
            "Lambda",
            description="EMD gateway: API Gateway authorizer (API key -> usage plan key)",
            handler=AUTHORIZER_HANDLER,
            code=code,
            architecture=architecture,
            # A cold start is mostly imports (botocore); more memory is more CPU.
            memory_size=512,
            timeout=cdk.Duration.seconds(10),
            reserved_concurrency=reserved_concurrency,
            environment={
                "EMD_API_KEY_SECRET_ID": secret.secret_arn,
                "EMD_PREFIX": prefix,
                "POWERTOOLS_SERVICE_NAME": "emd-authorizer",
            },
        )
        secret.grant_read(self.lambda_.role)
        self.bearer = apigw.RequestAuthorizer(
            self,
            "Bearer",
            handler=self.lambda_.function,
            identity_sources=[apigw.IdentitySource.header("Authorization")],
            results_cache_ttl=cdk.Duration.seconds(cache_seconds),
        )
        self.any_header = apigw.RequestAuthorizer(
            self,
            "AnyHeader",
            handler=self.lambda_.function,
            identity_sources=[],
            results_cache_ttl=cdk.Duration.seconds(0),
        )
        # CDK renders no identity source as "": leave the property out instead.
        default_child = self.any_header.node.default_child
        assert isinstance(default_child, apigw.CfnAuthorizer)
        default_child.add_property_deletion_override("IdentitySource")


class KeySync(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        prefix: str,
        code: lambda_.Code,
        code_hash: str,
        architecture: lambda_.Architecture,
        secret: secretsmanager.ISecret,
        api: apigw.RestApi,
        default_limits: KeyLimits | None,
    ) -> None:
        super().__init__(scope, id_)
        stage = api.deployment_stage
        limits_json = json.dumps(default_limits.to_document() if default_limits else {})
        self.lambda_ = PlainFunction(
            self,
            "Lambda",
            description="EMD gateway: API Gateway API keys and usage plans from the key secret",
            handler=SYNC_HANDLER,
            code=code,
            architecture=architecture,
            memory_size=256,
            timeout=cdk.Duration.minutes(5),
            environment={
                "EMD_API_KEY_SECRET_ID": secret.secret_arn,
                "EMD_PREFIX": prefix,
                "EMD_REST_API_ID": api.rest_api_id,
                "EMD_STAGE": stage.stage_name,
                "EMD_DEFAULT_KEY_LIMITS": limits_json,
                "POWERTOOLS_SERVICE_NAME": "emd-key-sync",
            },
        )
        secret.grant_read(self.lambda_.role)
        self._allow_api_keys_and_usage_plans()
        self.function = self.lambda_.function
        # Runs at each deploy whose inputs changed (a new code asset included), after
        # the stage exists: the generated default key works on the first request.
        self.resource = cdk.CustomResource(
            self,
            "Run",
            service_token=self.function.function_arn,
            resource_type="Custom::EmdKeySync",
            properties={
                "RestApiId": api.rest_api_id,
                "Stage": stage.stage_name,
                "DefaultLimits": limits_json,
                "Code": code_hash,
            },
        )
        self.resource.node.add_dependency(stage)
        self.resource.node.add_dependency(self.lambda_.role)

    def _allow_api_keys_and_usage_plans(self) -> None:
        """API keys, usage plans, their keys and tags of this account and region: the
        narrowest IAM allows (their ids are made by API Gateway at creation, and no
        condition key selects them by tag for every one of these calls)."""

        def arn(path: str) -> str:
            # Pseudo parameters even when the region is known: one acknowledgment id.
            return f"arn:{cdk.Aws.PARTITION}:apigateway:{cdk.Aws.REGION}::{path}"

        self.lambda_.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "apigateway:GET",
                    "apigateway:POST",
                    "apigateway:PATCH",
                    "apigateway:DELETE",
                ],
                resources=[
                    arn("/apikeys"),
                    arn("/apikeys/*"),
                    arn("/usageplans"),
                    arn("/usageplans/*"),
                ],
            )
        )
        # Creating a tagged key or plan is also a tag call on it.
        self.lambda_.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["apigateway:PUT"], resources=[arn("/tags/*")])
        )
        cdk.Validations.of(self.lambda_.role).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:apigateway:<AWS::Region>::/apikeys/*]",
                reason="API key ids are generated by API Gateway; the sync changes only keys "
                "tagged with its prefix (emd_proxy/usage_sync.py).",
            ),
            cdk.Acknowledgment(
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:apigateway:<AWS::Region>::/usageplans/*]",
                reason="Usage plan ids are generated by API Gateway; the sync changes only "
                "plans tagged with its prefix.",
            ),
            cdk.Acknowledgment(
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:apigateway:<AWS::Region>::/tags/*]",
                reason="Tagging the keys and plans it creates (their ARNs are unknown "
                "before creation).",
            ),
        )
