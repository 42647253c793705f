"""The REST API: REGIONAL, stage `prod`, one streaming Lambda integration per route.

Every integration is `AWS_PROXY` with `responseTransferMode: STREAM` (the Lambda is
invoked with response streaming; this also lifts the 29 s REST limit), and API
Gateway's own errors are rendered in OpenAI's error shape by Gateway Responses.
API keys are checked by the app (OpenAI clients send `Authorization: Bearer`), so
methods use authorization NONE.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from emd_proxy.families import Route

STAGE = "prod"

# Uploads API Gateway must pass to Lambda as base64 (audio transcriptions).
BINARY_MEDIA_TYPES = ["multipart/form-data", "audio/*", "application/octet-stream"]


@dataclass(frozen=True)
class RouteTarget:
    routes: Sequence[Route]
    function: lambda_.IFunction
    timeout: cdk.Duration


# API Gateway's own failures, as (status, OpenAI error type, code, message or None to
# keep API Gateway's message). A missing route is API Gateway's
# MISSING_AUTHENTICATION_TOKEN (403 by default): a 404 like the app's own.
_GATEWAY_RESPONSES: dict[str, tuple[str | None, str, str | None, str | None]] = {
    "MISSING_AUTHENTICATION_TOKEN": ("404", "invalid_request_error", "not_found", "Unknown route."),
    "RESOURCE_NOT_FOUND": ("404", "invalid_request_error", "not_found", "Unknown route."),
    "UNAUTHORIZED": ("401", "authentication_error", "invalid_api_key", None),
    # The authorizer accepted the key but API Gateway knows no API key for it: revoked
    # (the sync deleted it) or not synced yet.
    "INVALID_API_KEY": (
        "401",
        "authentication_error",
        "invalid_api_key",
        "Incorrect API key provided, or a new key not yet synced to API Gateway (`emd keys sync`).",
    ),
    # The authorizer could not read the key document: refused, like the app's own 503.
    "AUTHORIZER_FAILURE": (
        "503",
        "service_unavailable",
        "api_keys_unavailable",
        "API keys are unavailable.",
    ),
    "AUTHORIZER_CONFIGURATION_ERROR": (
        "500",
        "internal_error",
        "internal_error",
        "API keys are unavailable.",
    ),
    "ACCESS_DENIED": ("403", "permission_error", "access_denied", None),
    "WAF_FILTERED": ("403", "permission_error", "request_blocked", None),
    "THROTTLED": ("429", "rate_limit_error", "rate_limit_exceeded", None),
    "QUOTA_EXCEEDED": ("429", "rate_limit_error", "rate_limit_exceeded", None),
    "REQUEST_TOO_LARGE": ("413", "invalid_request_error", "request_too_large", None),
    "BAD_REQUEST_BODY": ("400", "invalid_request_error", None, None),
    "BAD_REQUEST_PARAMETERS": ("400", "invalid_request_error", None, None),
    "UNSUPPORTED_MEDIA_TYPE": ("415", "invalid_request_error", "unsupported_media_type", None),
    "INTEGRATION_TIMEOUT": ("504", "timeout", "upstream_timeout", None),
    "INTEGRATION_FAILURE": ("502", "upstream_error", "bad_gateway", None),
    # The rest keep their status and get a generic type.
    "DEFAULT_4XX": (None, "invalid_request_error", None, None),
    "DEFAULT_5XX": (None, "internal_error", "internal_error", None),
}


def gateway_response_template(type_: str, code: str | None, message: str | None) -> str:
    """`{"type": "error", "error": {message, type, param, code}}`: OpenAI's error shape,
    and Anthropic's too (`type: error`, `error.type`, `error.message`), because Gateway
    Responses are one per API, not per route, and cannot branch (no VTL), while the
    Anthropic routes' clients read their own shape. `messageString` is already quoted."""
    msg = json.dumps(message) if message else "$context.error.messageString"
    return (
        f'{{"type": "error", "error": {{"message": {msg}, "type": {json.dumps(type_)}, '
        f'"param": null, "code": {json.dumps(code)}}}}}'
    )


def access_log_format() -> apigw.AccessLogFormat:
    """One JSON line per request; never headers or bodies (they carry keys and prompts)."""
    fields = {
        "requestId": "$context.requestId",
        "requestTime": "$context.requestTimeEpoch",
        "ip": "$context.identity.sourceIp",
        "userAgent": "$context.identity.userAgent",
        "method": "$context.httpMethod",
        "path": "$context.path",
        "resourcePath": "$context.resourcePath",
        "protocol": "$context.protocol",
        "status": "$context.status",
        "responseLength": "$context.responseLength",
        "responseLatency": "$context.responseLatency",
        "integrationStatus": "$context.integration.status",
        "integrationLatency": "$context.integration.latency",
        "errorType": "$context.error.responseType",
        "errorMessage": "$context.error.message",
        "xrayTraceId": "$context.xrayTraceId",
    }
    return apigw.AccessLogFormat.custom(json.dumps(fields))


class GatewayApi(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        targets: Sequence[RouteTarget],
        rate_limit: float,
        burst_limit: int,
        authorizer_for: Callable[[Route], apigw.IAuthorizer | None] = lambda _: None,
        web_acl_arn: str | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=name,
            description="EMD gateway: OpenAI-compatible API in front of SageMaker endpoints",
            endpoint_configuration=apigw.EndpointConfiguration(types=[apigw.EndpointType.REGIONAL]),
            binary_media_types=BINARY_MEDIA_TYPES,
            # The usage plan key comes from the authorizer (`usageIdentifierKey`), not
            # from an x-api-key header (OpenAI clients send Authorization: Bearer).
            api_key_source_type=apigw.ApiKeySourceType.AUTHORIZER,
            # Stage logging needs the account's API Gateway CloudWatch role. It is one
            # setting per account and region (AWS::ApiGateway::Account): each stack
            # that makes one points the setting at its own role, and deleting that role
            # would break every API's logging in the region. So the role and the
            # setting are retained when the stack is deleted (also CDK's default).
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=cdk.RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=access_log_format(),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                # Full request/response logging would write API keys and prompts.
                data_trace_enabled=False,
                metrics_enabled=True,
                tracing_enabled=True,
                throttling_rate_limit=rate_limit,
                throttling_burst_limit=burst_limit,
            ),
        )
        # RestApi adds its own URL output (the stage root); BaseURL replaces it.
        self.api.node.try_remove_child("Endpoint")
        for target in targets:
            integration = apigw.LambdaIntegration(
                target.function,
                response_transfer_mode=apigw.ResponseTransferMode.STREAM,
                timeout=target.timeout,
            )
            for route in target.routes:
                authorizer = authorizer_for(route)
                self._resource(route.path).add_method(
                    route.method,
                    integration,
                    authorization_type=(
                        apigw.AuthorizationType.CUSTOM
                        if authorizer
                        else apigw.AuthorizationType.NONE
                    ),
                    authorizer=authorizer,
                    api_key_required=authorizer is not None,
                )
        for response_type, (status, type_, code, message) in _GATEWAY_RESPONSES.items():
            headers = {"Retry-After": "'1'"} if status in ("429", "503") else None
            self.api.add_gateway_response(
                f"Gateway{response_type.title().replace('_', '')}",
                type=apigw.ResponseType.of(response_type),
                status_code=status,
                response_headers=headers,
                templates={"application/json": gateway_response_template(type_, code, message)},
            )
        if web_acl_arn:
            wafv2.CfnWebACLAssociation(
                self,
                "WebAcl",
                resource_arn=self.api.deployment_stage.stage_arn,
                web_acl_arn=web_acl_arn,
            )

    def _resource(self, path: str) -> apigw.IResource:
        resource: apigw.IResource = self.api.root
        for part in path.strip("/").split("/"):
            resource = resource.get_resource(part) or resource.add_resource(part)
        return resource

    @property
    def base_url(self) -> str:
        """`https://<api>.execute-api.<region>.<suffix>/prod/v1` (no trailing slash)."""
        return self.api.url_for_path("/v1")
