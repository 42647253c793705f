"""The API stack as synthesized: routes, streaming integrations, Lambdas, IAM, secret,
stage settings, Gateway Responses and outputs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from aws_cdk import assertions

from emd_proxy.families import FAMILIES
from infra.bundling import LAMBDA_TARGET
from infra.config import ConfigError
from infra.constructs.proxy_function import adapter_layer
from infra.stacks.api_stack import TIMEOUTS
from tests.infra import cfn
from tests.infra.conftest import WEB_ACL_ARN
from tests.infra.synth import ACCOUNT, Synth

# The family table is the contract the app mounts its routers from (checked in
# tests/unit/test_families.py); the synthesized API must route exactly the same.
EXPECTED_ROUTES = {
    (route.method, route.path): spec.name for spec in FAMILIES for route in spec.routes
}
TIMEOUT_SECONDS = {spec.name: int(TIMEOUTS[spec.timeout].to_seconds()) for spec in FAMILIES}
FAMILY_NAMES = [spec.name for spec in FAMILIES]


def endpoint_arn(name: str, region: str = "us-east-1") -> str:
    return f"arn:aws:sagemaker:{region}:{ACCOUNT}:endpoint/{name}"


def test_every_route_maps_to_its_family_lambda(multi: Synth) -> None:
    template = multi.api
    functions = {lid: family for family, (lid, _) in cfn.functions_by_family(template).items()}
    routes = cfn.routes(template)
    assert set(routes) == set(EXPECTED_ROUTES)
    for route, props in routes.items():
        assert functions[cfn.integration_function(props["Integration"])] == EXPECTED_ROUTES[route]


def test_every_integration_streams_with_its_timeout(multi: Synth) -> None:
    functions = {lid: family for family, (lid, _) in cfn.functions_by_family(multi.api).items()}
    for route, props in cfn.routes(multi.api).items():
        integration = props["Integration"]
        family = functions[cfn.integration_function(integration)]
        assert integration["Type"] == "AWS_PROXY", route
        assert integration["ResponseTransferMode"] == "STREAM", route
        uri = cfn.join_text(integration["Uri"])
        assert uri.endswith("/response-streaming-invocations"), uri
        assert ":lambda:path/2021-11-15/functions/" in uri
        assert integration["TimeoutInMillis"] == TIMEOUT_SECONDS[family] * 1000, route
    chat = cfn.routes(multi.api)[("POST", "/v1/chat/completions")]["Integration"]
    assert chat["TimeoutInMillis"] == 15 * 60 * 1000
    # A transcription is one real-time InvokeEndpoint, which SageMaker ends at 60 s: its
    # Lambda and integration stop at 90 s, and its proxy gives up on SageMaker at 60 s.
    audio = cfn.routes(multi.api)[("POST", "/v1/audio/transcriptions")]["Integration"]
    assert audio["TimeoutInMillis"] == 90 * 1000
    _, audio_lambda = cfn.functions_by_family(multi.api)["audio"]
    assert audio_lambda["Timeout"] == 90
    assert audio_lambda["Environment"]["Variables"]["EMD_UPSTREAM_TIMEOUT_SECONDS"] == "60"


def test_lambdas_run_arm64_on_python_3_13_with_the_adapter(multi: Synth) -> None:
    functions = cfn.functions_by_family(multi.api)
    assert sorted(functions) == sorted(FAMILY_NAMES)
    # Plus the authorizer and the key sync (test_key_limits.py).
    assert len(cfn.resources(multi.api, "AWS::Lambda::Function")) == len(FAMILY_NAMES) + 2
    code_keys = set()
    for family, (_, props) in functions.items():
        assert props["Architectures"] == ["arm64"]
        # Not the newest runtime on purpose: its bundle can carry bytecode (bundling.py).
        assert props["Runtime"] == "python3.13" == f"python{LAMBDA_TARGET.python_version}"
        assert props["Handler"] == "run.sh"
        assert props["Layers"] == [
            "arn:aws:lambda:us-east-1:753240598075:layer:LambdaAdapterLayerArm64:30"
        ]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["Timeout"] == TIMEOUT_SECONDS[family]
        env = props["Environment"]["Variables"]
        assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
        assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
        assert env["PORT"] == "8080"
        assert env["AWS_LWA_READINESS_CHECK_PATH"] == "/health"
        assert env["EMD_REGISTRY_FILE"] == "/var/task/emd_registry.json"
        assert env["EMD_FAMILIES"] == family
        assert env["POWERTOOLS_SERVICE_NAME"] == "emd-proxy"
        assert env["EMD_API_KEY_SECRET_ID"] == {"Ref": only_secret_id(multi)}
        if family == "models":
            assert "EMD_UPSTREAM_TIMEOUT_SECONDS" not in env
        else:  # the proxy answers its own 504 before Lambda is cut off
            assert float(env["EMD_UPSTREAM_TIMEOUT_SECONDS"]) < TIMEOUT_SECONDS[family]
        code_keys.add(json.dumps(props["Code"], sort_keys=True))
    # One code asset shared by every family.
    assert len(code_keys) == 1


def only_secret_id(synth: Synth) -> str:
    (secret_id,) = cfn.resources(synth.api, "AWS::SecretsManager::Secret")
    return secret_id


def invoke_resources(template: cfn.Template, role_id: str) -> list[object]:
    found: list[object] = []
    for statement in cfn.statements_of_role(template, role_id):
        if any(a.startswith("sagemaker:") for a in cfn.actions(statement)):
            assert cfn.actions(statement) == ["sagemaker:InvokeEndpoint"]
            assert statement["Effect"] == "Allow"
            found.extend(cfn.listify(statement["Resource"]))
    return found


def test_invoke_endpoint_is_granted_on_exactly_the_family_endpoints(multi: Synth) -> None:
    expected = {
        "models": [],
        "chat": [
            "emd-qwen3-8b-dev",
            "emd-qwen3-4b-instruct-2507-prod",
            "emd-qwen2-5-7b-instruct-dev",
            "emd-qwen2-5-coder-7b-instruct-dev",
        ],
        "embeddings": ["emd-bge-m3-dev"],
        "rerank": ["emd-bge-reranker-v2-m3-dev"],
        "invocations": [
            "emd-qwen3-8b-dev",
            "emd-qwen3-4b-instruct-2507-prod",
            "emd-qwen2-5-7b-instruct-dev",
            "emd-qwen2-5-coder-7b-instruct-dev",
            "emd-bge-m3-dev",
            "emd-bge-reranker-v2-m3-dev",
        ],
        "audio": ["emd-whisper-large-v3-turbo-dev"],
    }
    # Every API family over chat models (completions, ...) gets exactly chat's grants.
    by_models = {spec.name: spec.models or "models" for spec in FAMILIES}
    for family, (_, props) in cfn.functions_by_family(multi.api).items():
        granted = invoke_resources(multi.api, cfn.role_of(props))
        wanted = expected[by_models[family]]
        assert sorted(granted) == sorted(endpoint_arn(n) for n in wanted), family


def test_endpoint_arns_are_computed_when_the_region_is_unknown(agnostic: Synth) -> None:
    functions = cfn.functions_by_family(agnostic.api)
    grants = {f: invoke_resources(agnostic.api, cfn.role_of(p)) for f, (_, p) in functions.items()}
    # Families without a model keep their Lambda but get no InvokeEndpoint at all.
    assert grants["chat"] == grants["rerank"] == grants["models"] == []
    (embeddings,) = grants["embeddings"]
    assert cfn.join_text(embeddings) == (
        "arn:{AWS::Partition}:sagemaker:{AWS::Region}:123456789012:endpoint/team1-bge-m3-v2"
    )
    assert [cfn.join_text(a) for a in grants["invocations"]] == [cfn.join_text(embeddings)]


def test_no_sagemaker_permission_is_wider_than_an_endpoint(multi: Synth, agnostic: Synth) -> None:
    for synth in (multi, agnostic):
        for policy in cfn.resources(synth.api, "AWS::IAM::Policy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if any(a.startswith("sagemaker") for a in cfn.actions(statement)):
                    for resource in cfn.listify(statement["Resource"]):
                        text = cfn.join_text(resource)
                        assert "*" not in text, text
                        assert f":endpoint/{synth.config.prefix.lower()}-" in text


def test_secret_is_readable_only_by_the_lambdas(multi: Synth) -> None:
    template = multi.api
    secret_id = only_secret_id(multi)
    # No resource policy that could lock out the account's administrators.
    assert not cfn.resources(template, "AWS::SecretsManager::ResourcePolicy")
    generate = template["Resources"][secret_id]["Properties"]["GenerateSecretString"]
    assert generate["SecretStringTemplate"] == "{}"
    assert generate["GenerateStringKey"] == "default"
    assert generate["ExcludePunctuation"] is True
    assert generate["IncludeSpace"] is False
    assert generate["PasswordLength"] >= 32

    # The family Lambdas, the authorizer and the key sync: every Lambda of the stack.
    lambda_roles = {
        cfn.role_of(p["Properties"])
        for p in cfn.resources(template, "AWS::Lambda::Function").values()
    }
    assert len(lambda_roles) == len(FAMILY_NAMES) + 2
    readers = set()
    for policy in cfn.resources(template, "AWS::IAM::Policy").values():
        props = policy["Properties"]
        for statement in props["PolicyDocument"]["Statement"]:
            if any(a.startswith("secretsmanager:") for a in cfn.actions(statement)):
                assert statement["Resource"] == {"Ref": secret_id}
                assert set(cfn.actions(statement)) == {
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:DescribeSecret",
                }
                readers.update(r["Ref"] for r in props["Roles"])
    assert readers == lambda_roles
    # Roles are the Lambdas' own, trusted by Lambda only, with no managed policies.
    for role_id in lambda_roles:
        role = template["Resources"][role_id]["Properties"]
        assert "ManagedPolicyArns" not in role
        (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}


def test_outputs(multi: Synth) -> None:
    outputs = multi.api["Outputs"]
    assert set(outputs) == {"BaseURL", "ApiKeySecretArn", "ApiKeySecretName", "KeySyncFunctionName"}
    base_url = cfn.join_text(outputs["BaseURL"]["Value"])
    assert re.fullmatch(
        r"https://\{\w+\}\.execute-api\.us-east-1\.\{AWS::URLSuffix\}/\{\w+\}/v1", base_url
    ), base_url
    assert outputs["ApiKeySecretArn"]["Value"] == {"Ref": only_secret_id(multi)}
    assert "Fn::Join" in outputs["ApiKeySecretName"]["Value"]  # the name without its suffix


def test_stage_logs_traces_and_throttles(multi: Synth, agnostic: Synth) -> None:
    template = assertions.Template.from_json(multi.api)
    template.has_resource_properties(
        "AWS::ApiGateway::RestApi",
        {
            "EndpointConfiguration": {"Types": ["REGIONAL"]},
            "BinaryMediaTypes": assertions.Match.array_with(["multipart/form-data", "audio/*"]),
        },
    )
    (stage,) = cfn.resources(multi.api, "AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "prod"
    assert props["TracingEnabled"] is True
    access_format = json.loads(props["AccessLogSetting"]["Format"])
    assert access_format["requestId"] == "$context.requestId"
    assert access_format["status"] == "$context.status"
    (settings,) = props["MethodSettings"]
    assert settings["LoggingLevel"] == "ERROR"
    assert settings["DataTraceEnabled"] is False  # never log bodies (keys, prompts)
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (50, 100)
    # Context-configured throttling.
    (stage,) = cfn.resources(agnostic.api, "AWS::ApiGateway::Stage").values()
    (settings,) = stage["Properties"]["MethodSettings"]
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (5, 10)


def test_gateway_responses_use_the_openai_error_shape(multi: Synth) -> None:
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in cfn.resources(multi.api, "AWS::ApiGateway::GatewayResponse").values()
    }
    expected_status = {
        "MISSING_AUTHENTICATION_TOKEN": "404",  # API Gateway's answer to an unknown route
        "UNAUTHORIZED": "401",
        "ACCESS_DENIED": "403",
        "THROTTLED": "429",
        "INTEGRATION_TIMEOUT": "504",
        "INTEGRATION_FAILURE": "502",
        "REQUEST_TOO_LARGE": "413",
    }
    for response_type, status in expected_status.items():
        assert responses[response_type]["StatusCode"] == status
    assert {"DEFAULT_4XX", "DEFAULT_5XX"} <= set(responses)
    assert responses["THROTTLED"]["ResponseParameters"] == {
        "gatewayresponse.header.Retry-After": "'1'"
    }
    for response_type, props in responses.items():
        template = props["ResponseTemplates"]["application/json"]
        body = json.loads(template.replace("$context.error.messageString", '"Throttled"'))
        assert set(body["error"]) == {"message", "type", "param", "code"}, response_type
        assert body["error"]["param"] is None
    timeout = json.loads(
        responses["INTEGRATION_TIMEOUT"]["ResponseTemplates"]["application/json"].replace(
            "$context.error.messageString", '""'
        )
    )
    assert (timeout["error"]["type"], timeout["error"]["code"]) == ("timeout", "upstream_timeout")


def test_waf_is_attached_when_configured(multi: Synth, agnostic: Synth) -> None:
    assert not cfn.resources(multi.api, "AWS::WAFv2::WebACLAssociation")
    (association,) = cfn.resources(agnostic.api, "AWS::WAFv2::WebACLAssociation").values()
    assert association["Properties"]["WebACLArn"] == WEB_ACL_ARN


def test_alarms_on_5xx_and_lambda_errors(multi: Synth) -> None:
    alarms = [a["Properties"] for a in cfn.resources(multi.api, "AWS::CloudWatch::Alarm").values()]
    metrics = sorted((a["Namespace"], a["MetricName"]) for a in alarms)
    assert metrics.count(("AWS/Lambda", "Errors")) == len(FAMILIES)
    assert ("AWS/ApiGateway", "5XXError") in metrics


def test_no_models_still_gives_every_route(empty: Synth) -> None:
    assert empty.stack_names() == ["EMD-API"]
    assert set(cfn.routes(empty.api)) == set(EXPECTED_ROUTES)
    for _, props in cfn.functions_by_family(empty.api).values():
        assert invoke_resources(empty.api, cfn.role_of(props)) == []


def lambda_code_and_layers(synth: Synth) -> tuple[set[str], set[str], set[str]]:
    """(architectures, layer ARNs as JSON, code S3 keys) over every family Lambda."""
    functions = [props for _, props in cfn.functions_by_family(synth.api).values()]
    return (
        {arch for props in functions for arch in props["Architectures"]},
        {json.dumps(layer, sort_keys=True) for props in functions for layer in props["Layers"]},
        {json.dumps(props["Code"]["S3Key"]) for props in functions},
    )


def test_china_uses_the_adapters_china_accounts_on_x86_64(
    multi: Synth, make_synth: Callable[..., Synth]
) -> None:
    """The adapter publishes x86_64 layers only in China, from one account per region
    (awslabs/aws-lambda-web-adapter, docs/guide/src/getting-started/zip-packages.md):
    there the Lambdas run x86_64, from a bundle built for x86_64."""
    china = make_synth(models=[{"id": "bge-m3"}], region="cn-north-1")
    architectures, layers, keys = lambda_code_and_layers(china)
    assert architectures == {"x86_64"}
    assert layers == {
        json.dumps("arn:aws-cn:lambda:cn-north-1:041581134020:layer:LambdaAdapterLayerX86:26")
    }
    assert keys.isdisjoint(lambda_code_and_layers(multi)[2])  # another bundle
    assert adapter_layer("cn-northwest-1").arn("aws-cn", "cn-northwest-1") == (
        "arn:aws-cn:lambda:cn-northwest-1:069767869989:layer:LambdaAdapterLayerX86:26"
    )
    # The commercial partition keeps the pinned arm64 layer (see also the test above).
    assert lambda_code_and_layers(multi)[:2] == (
        {"arm64"},
        {json.dumps("arn:aws:lambda:us-east-1:753240598075:layer:LambdaAdapterLayerArm64:30")},
    )
    assert adapter_layer("eu-central-1") == adapter_layer("us-east-1")


@pytest.mark.parametrize("region", ["us-gov-west-1", "us-gov-east-1", "cn-south-9"])
def test_regions_without_an_adapter_layer_fail_synth_clearly(
    region: str, make_synth: Callable[..., Synth]
) -> None:
    expected = "GovCloud" if region.startswith("us-gov") else "China regions cn-north-1, "
    with pytest.raises(ConfigError, match=f"region {region}: .*{expected}"):
        make_synth(models=[], region=region)


def test_an_env_agnostic_template_refuses_the_regions_without_the_arm64_layer(
    agnostic: Synth, multi: Synth
) -> None:
    architectures, layers, _ = lambda_code_and_layers(agnostic)
    assert architectures == {"arm64"}
    (layer,) = layers
    assert cfn.join_text(json.loads(layer)) == (
        "arn:{AWS::Partition}:lambda:{AWS::Region}:753240598075:layer:LambdaAdapterLayerArm64:30"
    )
    (assertion,) = agnostic.api["Rules"]["WebAdapterRegion"]["Assertions"]
    assert assertion["Assert"] == {
        "Fn::Not": [
            {
                "Fn::Contains": [
                    ["cn-north-1", "cn-northwest-1", "us-gov-east-1", "us-gov-west-1"],
                    {"Ref": "AWS::Region"},
                ]
            }
        ]
    }
    assert "synthesize with the region set" in assertion["AssertDescription"]
    assert "WebAdapterRegion" not in multi.api.get("Rules", {})


def test_reserved_concurrency_only_where_configured(agnostic: Synth, multi: Synth) -> None:
    reserved = {
        family: props.get("ReservedConcurrentExecutions")
        for family, (_, props) in cfn.functions_by_family(agnostic.api).items()
    }
    assert reserved == {name: {"chat": 20, "audio": 2}.get(name) for name in FAMILY_NAMES}
    for _, props in cfn.functions_by_family(multi.api).values():
        assert "ReservedConcurrentExecutions" not in props


def test_the_account_wide_cloudwatch_role_is_retained(multi: Synth) -> None:
    """AWS::ApiGateway::Account is one setting per account and region: deleting the
    stack must leave it, and the role it points at, for the region's other APIs."""
    (account,) = cfn.resources(multi.api, "AWS::ApiGateway::Account").values()
    assert account["DeletionPolicy"] == account["UpdateReplacePolicy"] == "Retain"
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    role = multi.api["Resources"][role_id]
    assert role["DeletionPolicy"] == role["UpdateReplacePolicy"] == "Retain"
