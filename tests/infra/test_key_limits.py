"""Per-key limits at API Gateway, as synthesized: the authorizers on every route but
/health, API keys from the authorizer, the key-sync Lambda and its custom resource,
their IAM, reserved concurrency, the opt-in WAF, and the context that drives them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from emd_proxy.families import BY_NAME, FAMILIES
from infra.config import ConfigError, load
from infra.constructs.key_limits import AUTHORIZER_HANDLER, SYNC_HANDLER
from tests.infra import cfn
from tests.infra.synth import Synth

ANTHROPIC_ROUTES = {(r.method, r.path) for r in BY_NAME["messages"].routes}
PUBLIC = {("GET", "/health")}
ALL_ROUTES = {(r.method, r.path) for spec in FAMILIES for r in spec.routes}


@pytest.fixture(scope="module")
def limited(make_synth: Callable[..., Synth]) -> Synth:
    return make_synth(
        models=[{"id": "Qwen3-8B"}],
        region="eu-west-1",
        context={
            "emd:waf": {"rate_limit": 600},
            "emd:key_limits": {"rate": 2, "quota": 1000, "quota_period": "MONTH"},
            "emd:authorizer_cache_seconds": 60,
            "emd:reserved_concurrency": {"authorizer": 50, "chat": 10},
        },
    )


def function_by_handler(template: cfn.Template, handler: str) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (lid, r["Properties"])
        for lid, r in cfn.resources(template, "AWS::Lambda::Function").items()
        if r["Properties"]["Handler"] == handler
    ]
    return found


def authorizers(template: cfn.Template) -> dict[str, dict[str, Any]]:
    return {
        lid: r["Properties"]
        for lid, r in cfn.resources(template, "AWS::ApiGateway::Authorizer").items()
    }


def test_every_route_but_health_needs_the_authorizer_and_an_api_key(multi: Synth) -> None:
    template = multi.api
    (api,) = cfn.resources(template, "AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["ApiKeySourceType"] == "AUTHORIZER"
    found = authorizers(template)
    routes = cfn.routes(template)
    assert set(routes) == ALL_ROUTES
    for route, props in routes.items():
        if route in PUBLIC:
            assert props["AuthorizationType"] == "NONE", route
            assert not props.get("ApiKeyRequired", False), route
            assert "AuthorizerId" not in props
            continue
        assert props["AuthorizationType"] == "CUSTOM", route
        assert props["ApiKeyRequired"] is True, route
        authorizer = found[props["AuthorizerId"]["Ref"]]
        assert authorizer["Type"] == "REQUEST"
        if route in ANTHROPIC_ROUTES:
            # x-api-key or a Bearer header: no identity source, so no cache.
            assert "IdentitySource" not in authorizer
            assert authorizer["AuthorizerResultTtlInSeconds"] == 0
        else:
            assert authorizer["IdentitySource"] == "method.request.header.Authorization"
            assert authorizer["AuthorizerResultTtlInSeconds"] == 300


def test_both_authorizers_call_the_plain_authorizer_lambda(multi: Synth) -> None:
    template = multi.api
    function_id, props = function_by_handler(template, AUTHORIZER_HANDLER)
    for authorizer in authorizers(template).values():
        assert f"{{{function_id}.Arn}}/invocations" in cfn.join_text(authorizer["AuthorizerUri"])
    # No Web Adapter: the managed runtime calls the handler itself.
    assert "Layers" not in props
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    env = props["Environment"]["Variables"]
    assert env["EMD_PREFIX"] == "EMD"
    assert "AWS_LAMBDA_EXEC_WRAPPER" not in env
    # API Gateway may invoke it, from this API's authorizers only.
    permissions = [
        p["Properties"]
        for p in cfn.resources(template, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    assert permissions
    for permission in permissions:
        assert permission["Principal"] == "apigateway.amazonaws.com"
        assert "/authorizers/" in cfn.join_text(permission["SourceArn"])


def test_the_authorizer_may_read_the_secret_and_nothing_else(multi: Synth) -> None:
    template = multi.api
    _, props = function_by_handler(template, AUTHORIZER_HANDLER)
    statements = cfn.statements_of_role(template, cfn.role_of(props))
    granted = sorted(a for s in statements for a in cfn.actions(s))
    assert granted == sorted(
        [
            "secretsmanager:GetSecretValue",
            "secretsmanager:DescribeSecret",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
        ]
    )


def test_the_key_sync_may_change_api_keys_and_usage_plans_only(multi: Synth) -> None:
    template = multi.api
    function_id, props = function_by_handler(template, SYNC_HANDLER)
    env = props["Environment"]["Variables"]
    assert json.loads(env["EMD_DEFAULT_KEY_LIMITS"]) == {"rate": 10.0, "burst": 20}
    assert env["EMD_STAGE"] == {
        "Ref": next(iter(cfn.resources(template, "AWS::ApiGateway::Stage")))
    }
    statements = cfn.statements_of_role(template, cfn.role_of(props))
    apigateway = [s for s in statements if any(a.startswith("apigateway:") for a in cfn.actions(s))]
    resources = sorted(cfn.join_text(r) for s in apigateway for r in cfn.listify(s["Resource"]))
    assert resources == [
        f"arn:{{AWS::Partition}}:apigateway:{{AWS::Region}}::{path}"
        for path in ("/apikeys", "/apikeys/*", "/tags/*", "/usageplans", "/usageplans/*")
    ]
    others = {a for s in statements for a in cfn.actions(s)} - {
        a for s in apigateway for a in cfn.actions(s)
    }
    assert others == {
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    # The custom resource runs it after the stage exists, with the inputs that matter.
    run = next(iter(cfn.resources(template, "Custom::EmdKeySync").values()))
    assert run["Properties"]["ServiceToken"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert set(run["Properties"]) >= {"RestApiId", "Stage", "DefaultLimits", "Code"}
    stage_id = next(iter(cfn.resources(template, "AWS::ApiGateway::Stage")))
    assert stage_id in run["DependsOn"]
    output = multi.api["Outputs"]["KeySyncFunctionName"]
    assert output["Value"] == {"Ref": function_id}


def test_context_sets_default_limits_cache_reserved_concurrency_and_waf(limited: Synth) -> None:
    template = limited.api
    _, sync = function_by_handler(template, SYNC_HANDLER)
    assert json.loads(sync["Environment"]["Variables"]["EMD_DEFAULT_KEY_LIMITS"]) == {
        "rate": 2.0,
        "quota": 1000,
        "quota_period": "MONTH",
    }
    ttls = sorted(a["AuthorizerResultTtlInSeconds"] for a in authorizers(template).values())
    assert ttls == [0, 60]
    _, authorizer = function_by_handler(template, AUTHORIZER_HANDLER)
    assert authorizer["ReservedConcurrentExecutions"] == 50
    _, chat = cfn.functions_by_family(template)["chat"]
    assert chat["ReservedConcurrentExecutions"] == 10
    (acl_id, acl) = next(iter(cfn.resources(template, "AWS::WAFv2::WebACL").items()))
    props = acl["Properties"]
    assert props["Scope"] == "REGIONAL"
    assert props["DefaultAction"] == {"Allow": {}}
    (rule,) = props["Rules"]
    assert rule["Action"] == {"Block": {}}
    assert rule["Statement"]["RateBasedStatement"] == {
        "AggregateKeyType": "IP",
        "Limit": 600,
        "EvaluationWindowSec": 300,
    }
    (association,) = cfn.resources(template, "AWS::WAFv2::WebACLAssociation").values()
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    assert "/stages/" in cfn.join_text(association["Properties"]["ResourceArn"])
    report = limited.validation_report()
    assert [v for p in report["pluginReports"] for v in p.get("violations", [])] == []


def test_no_waf_unless_opted_in(multi: Synth) -> None:
    assert not cfn.resources(multi.api, "AWS::WAFv2::WebACL")
    assert not cfn.resources(multi.api, "AWS::WAFv2::WebACLAssociation")
    _, authorizer = function_by_handler(multi.api, AUTHORIZER_HANDLER)
    assert "ReservedConcurrentExecutions" not in authorizer


def test_gateway_answers_for_the_authorizer_in_openai_shape(multi: Synth) -> None:
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in cfn.resources(multi.api, "AWS::ApiGateway::GatewayResponse").values()
    }
    for response_type, status, code in (
        ("INVALID_API_KEY", "401", "invalid_api_key"),
        ("AUTHORIZER_FAILURE", "503", "api_keys_unavailable"),
        ("AUTHORIZER_CONFIGURATION_ERROR", "500", "internal_error"),
        ("QUOTA_EXCEEDED", "429", "rate_limit_exceeded"),
    ):
        props = responses[response_type]
        assert props["StatusCode"] == status
        template = props["ResponseTemplates"]["application/json"]
        body = json.loads(template.replace("$context.error.messageString", '"x"'))
        assert body["error"]["code"] == code
        # Anthropic's clients (on /v1/messages) read `type` and `error.type` as well.
        assert body["type"] == "error"


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"emd:key_limits": {"rate": 0}}, 'emd:key_limits: "rate" must be a number > 0'),
        ({"emd:key_limits": {"qouta": 5}}, 'unknown field "qouta" (did you mean "quota"?)'),
        ({"emd:key_limits": {"burst": 5}}, '"burst" needs "rate"'),
        ({"emd:authorizer_cache_seconds": 3601}, "from 0 (no cache) to 3600"),
        ({"emd:authorizer_cache_seconds": "x"}, "not valid JSON"),
        ({"emd:waf": {"rate_limit": 5}}, "emd:waf: rate_limit"),
        ({"emd:waf": {"limit": 500}}, "emd:waf: limit"),
        (
            {
                "emd:waf": {},
                "emd:web_acl_arn": "arn:aws:wafv2:us-east-1:1:regional/webacl/a/b",
            },
            "emd:waf and emd:web_acl_arn both attach a web ACL",
        ),
        ({"emd:reserved_concurrency": {"authorizers": 5}}, "chat, "),
    ],
)
def test_bad_context_fails_with_a_clear_message(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(context.get)
    assert message in str(raised.value)


def test_context_defaults_and_opt_outs() -> None:
    config = load({}.get)
    assert (config.key_limits.rate, config.key_limits.burst, config.key_limits.quota) == (
        10,
        20,
        None,
    )
    assert config.authorizer_cache_seconds == 300
    assert config.waf is None
    assert load({"emd:key_limits": {}}.get).key_limits is None
    assert load({"emd:key_limits": "{}"}.get).key_limits is None
    assert load({"emd:waf": "{}"}.get).waf.rate_limit == 2000
    assert load({"emd:authorizer_cache_seconds": "0"}.get).authorizer_cache_seconds == 0
