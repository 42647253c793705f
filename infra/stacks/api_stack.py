"""`<prefix>-API`: the REST API, one streaming Lambda per endpoint family, and the
API key secret.

Every Lambda gets the whole registry (so a wrong-family request gets an exact 400),
but each may invoke only its own family's endpoints (and wake only their inference
components, for scale-to-zero models). Endpoint ARNs are computed from
the context's deterministic names, not imported from the model stacks: a cross-stack
export would block updating or deleting a model stack.
"""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from emd_proxy.families import BY_NAME, FAMILIES, MODELS, Route, TimeoutClass

from ..bundling import asset_hash, lambda_code
from ..config import RESERVED_AUTHORIZER, DeployConfig
from ..constructs.alarms import GatewayAlarms
from ..constructs.gateway_api import GatewayApi, RouteTarget
from ..constructs.key_limits import KeyAuthorizer, KeySync
from ..constructs.proxy_function import AdapterChoice, ProxyFunction
from ..constructs.waf import RateLimitWebAcl

# Lambda (and API Gateway integration) timeout and memory per timeout class of the
# family table: generation and raw invocations stream up to API Gateway's 15 minute
# limit; embeddings, rerank and transcriptions are one real-time InvokeEndpoint, which
# SageMaker ends at 60 s, so 90 s covers it with the margin below (their proxy gives up
# on SageMaker at 60 s); listing models is local.
TIMEOUTS: dict[TimeoutClass, cdk.Duration] = {
    "instant": cdk.Duration.seconds(30),
    "short": cdk.Duration.seconds(90),
    "long": cdk.Duration.minutes(15),
}
MEMORY_MB: dict[TimeoutClass, int] = {"instant": 512, "short": 1024, "long": 1024}
# The proxy gives up on SageMaker this long before Lambda and API Gateway would, so
# the client gets its own 504 in OpenAI's shape rather than a cut connection.
_UPSTREAM_MARGIN_SECONDS = 30
# The only routes without an API key: a load balancer's or a monitor's health check.
PUBLIC_ROUTES = frozenset({Route("GET", "/health")})
# Routes whose clients (Anthropic's SDKs) send the key as x-api-key, or as a Bearer
# header: their authorizer reads either header, uncached (constructs/key_limits.py).
ANY_HEADER_ROUTES = frozenset(BY_NAME["messages"].routes)


class ApiStack(cdk.Stack):
    def __init__(self, scope: Construct, *, config: DeployConfig, **kwargs: Any) -> None:
        super().__init__(
            scope,
            config.api_stack_name,
            description="EMD gateway: OpenAI-compatible API (API Gateway + Lambda) in front "
            "of SageMaker endpoints",
            **kwargs,
        )
        self.config = config
        self.secret = self._api_key_secret()
        # Before the code asset: a region without an adapter layer fails synth at once.
        adapter = AdapterChoice(self)
        layer = lambda_.LayerVersion.from_layer_version_arn(self, "WebAdapterLayer", adapter.arn)
        code = lambda_code(config.registry_json(), adapter.layer.target)
        self.authorizer = KeyAuthorizer(
            self,
            "KeyAuthorizer",
            prefix=config.prefix,
            code=code,
            architecture=adapter.layer.architecture,
            secret=self.secret,
            cache_seconds=config.authorizer_cache_seconds,
            reserved_concurrency=config.reserved_concurrency.get(RESERVED_AUTHORIZER),
        )

        self.functions: dict[str, ProxyFunction] = {}
        targets: list[RouteTarget] = []
        for spec in FAMILIES:
            timeout = TIMEOUTS[spec.timeout]
            environment = {}
            if spec.name != MODELS:
                environment["EMD_UPSTREAM_TIMEOUT_SECONDS"] = str(
                    timeout.to_seconds() - _UPSTREAM_MARGIN_SECONDS
                )
            fn = ProxyFunction(
                self,
                f"{spec.name.title()}Lambda",
                family=spec.name,
                code=code,
                layer=layer,
                architecture=adapter.layer.architecture,
                secret_id=self.secret.secret_arn,
                timeout=timeout,
                memory_size=MEMORY_MB[spec.timeout],
                reserved_concurrency=config.reserved_concurrency.get(spec.name),
                environment=environment,
            )
            self.secret.grant_read(fn.role)
            if spec.models is not None:
                components = self.component_arns(spec.models)
                fn.allow_invoke_endpoints(self.endpoint_arns(spec.models), components)
                fn.allow_wake_components(self.component_arns(spec.models, waking=True))
            cdk.Validations.of(fn.role).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions-IAM5[Resource::*]",
                    reason="X-Ray tracing: xray:PutTraceSegments and "
                    "xray:PutTelemetryRecords have no resource-level permissions.",
                )
            )
            self.functions[spec.name] = fn
            targets.append(RouteTarget(spec.routes, fn.function, timeout))

        web_acl_arn = config.web_acl_arn
        if config.waf is not None:
            web_acl_arn = RateLimitWebAcl(
                self, "Waf", name=f"{config.prefix}-api", rate_limit=config.waf.rate_limit
            ).arn
        self.gateway = GatewayApi(
            self,
            "Gateway",
            name=f"{config.prefix}-api",
            targets=targets,
            rate_limit=config.throttle.rate_limit,
            burst_limit=config.throttle.burst_limit,
            authorizer_for=self._authorizer_for,
            web_acl_arn=web_acl_arn,
        )
        self._acknowledge_api(with_waf=web_acl_arn is not None)
        self.key_sync = KeySync(
            self,
            "KeySync",
            prefix=config.prefix,
            code=code,
            code_hash=asset_hash(config.registry_json(), adapter.layer.target),
            architecture=adapter.layer.architecture,
            secret=self.secret,
            api=self.gateway.api,
            default_limits=config.key_limits,
        )
        GatewayAlarms(
            self,
            "Alarms",
            api=self.gateway.api,
            functions={name: f.function for name, f in self.functions.items()},
        )

        cdk.CfnOutput(
            self,
            "BaseURL",
            value=self.gateway.base_url,
            description="OpenAI base URL (ends with /v1)",
        )
        cdk.CfnOutput(
            self,
            "ApiKeySecretArn",
            value=self.secret.secret_arn,
            description="Secrets Manager secret with the API keys",
        )
        cdk.CfnOutput(
            self,
            "ApiKeySecretName",
            value=self.secret.secret_name,
            description="name of the API key secret",
        )
        cdk.CfnOutput(
            self,
            "KeySyncFunctionName",
            value=self.key_sync.function.function_name,
            description="Lambda that syncs API Gateway API keys and usage plans with the "
            "secret (`emd keys` invokes it after each change)",
        )

    def _authorizer_for(self, route: Route) -> apigw.IAuthorizer | None:
        if route in PUBLIC_ROUTES:
            return None
        if route in ANY_HEADER_ROUTES:
            return self.authorizer.any_header
        return self.authorizer.bearer

    def endpoint_arns(self, family: str) -> list[str]:
        return [
            self.format_arn(service="sagemaker", resource="endpoint", resource_name=name)
            for name in self.config.endpoints_of(family)
        ]

    def component_arns(self, family: str, *, waking: bool = False) -> list[str]:
        """The inference components of `family` (`waking`: only scale-to-zero ones),
        by their deterministic names like the endpoints."""
        return [
            self.format_arn(service="sagemaker", resource="inference-component", resource_name=n)
            for n in self.config.components_of(family, waking=waking)
        ]

    def _api_key_secret(self) -> secretsmanager.Secret:
        # No resource policy: the stack grants read to the Lambda roles, and the
        # account's administrators keep their IAM access (`emd status`, `emd keys`).
        secret = secretsmanager.Secret(
            self,
            "ApiKeys",
            description="EMD gateway API keys: JSON object of key name to key "
            '(or {"key", "models"} for a key limited to some models)',
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({}),
                generate_string_key="default",
                # Letters and digits only: no character that needs escaping in an
                # HTTP header, a shell or JSON.
                exclude_punctuation=True,
                include_space=False,
                password_length=48,
            ),
        )
        cdk.Validations.of(secret).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-SMG4",
                reason="API keys are long-lived client credentials handed to users; they "
                "are rotated on purpose with `emd keys`, not on a schedule (an automatic "
                "rotation would cut off every client).",
            )
        )
        return secret

    def _acknowledge_api(self, *, with_waf: bool) -> None:
        auth_reason = (
            "Every route but GET /health has a Lambda authorizer (the key from "
            "`Authorization: Bearer` or x-api-key, checked against Secrets Manager) and "
            "requires the API key it names, whose usage plan limits the key. /health is "
            "public by design (health checks); API keys are ours, not Cognito users."
        )
        validations = cdk.Validations.of(self.gateway.api)
        validations.acknowledge(
            cdk.Acknowledgment(id="AwsSolutions-APIG4", reason=auth_reason),
            cdk.Acknowledgment(id="AwsSolutions-COG4", reason=auth_reason),
            cdk.Acknowledgment(
                id="AwsSolutions-APIG2",
                reason="The app validates every request body (pydantic) and answers "
                "OpenAI-shaped 400s naming the bad field; API Gateway validation would "
                "duplicate the evolving OpenAI schemas and answer in another shape.",
            ),
        )
        cloud_watch_role = self.gateway.api.node.find_child("CloudWatchRole")
        cdk.Validations.of(cloud_watch_role).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                "service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
                reason="The account-level role API Gateway needs to write stage access "
                "and execution logs; AWS maintains this service-role policy for exactly "
                "that purpose.",
            )
        )
        if not with_waf:
            validations.acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions-APIG3",
                    reason="WAF is optional (context emd:web_acl_arn attaches your web "
                    "ACL): it costs per ACL and request, and the common managed rule set "
                    "blocks bodies over 8 KB (chat and audio requests). Stage throttling "
                    "(emd:throttle), the authorizer and per-key usage plans guard the API; "
                    "emd:waf creates a rate-based web ACL.",
                ),
            )
