"""`emd doctor` in process against moto: STS, CloudFormation (the CDK bootstrap stack,
our stacks and strangers'), SageMaker endpoints and their tags, CloudWatch Logs, ECR
repositories in the images' publishing accounts and the Lambda Web Adapter layer.

Two things moto cannot do are done around it, and only those:
- Service Quotas: moto 5.2 answers `get_service_quota` / `list_aws_default_service_quotas`
  for the `vpc` service code only and has no `list_service_quotas`, so the
  `service-quotas` client (and only it) gets a botocore `Stubber` with the SageMaker
  quotas of each test (the stub also checks the request: ServiceCode `sagemaker`).
- The adapter layer lives in AWS's account 753240598075: moto keeps layers per account
  and finds a layer ARN only in the caller's account, so the layer is published as that
  account (MOTO_ACCOUNT_ID) and its moto object is shared into the caller's account.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.awslambda.models import lambda_backends
from moto.core import DEFAULT_ACCOUNT_ID
from typer.testing import CliRunner

from emd.aws import Aws
from emd.cli import app
from emd.doctor import QUOTA_CONSOLE
from infra.images import TEI, VLLM, ContainerImage
from infra.prices import hourly_price
from tests.moto_deployment import (
    AWS_ENV_TO_CLEAR,
    DUMMY_AWS_ENV,
    REGION,
    create_endpoint,
    template,
)

runner = CliRunner()
LAYER_ACCOUNT = "753240598075"
MODELS = [
    {"id": "Qwen3-4B-Instruct-2507", "tag": "dev", "max_capacity": 2},
    {"id": "bge-m3"},
]
QWEN_STACK = "EMD-Model-qwen3-4b-instruct-2507-dev"
QWEN_ENDPOINT = "emd-qwen3-4b-instruct-2507-dev"
BGE_ENDPOINT = "emd-bge-m3-dev"
G5 = "ml.g5.xlarge"  # both models' default instance type


@pytest.fixture
def aws(monkeypatch):
    for name in (*AWS_ENV_TO_CLEAR, "MOTO_ACCOUNT_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in DUMMY_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A cdk.json like the shipped one, with two models."""
    (tmp_path / "cdk.json").write_text(
        json.dumps(
            {"app": "python3 app.py", "context": {"emd:prefix": "EMD", "emd:models": MODELS}}
        )
    )
    return tmp_path


@pytest.fixture
def quotas(monkeypatch):
    """`quotas(applied, defaults=None)`: what Service Quotas will answer (see the module
    docstring); `defaults` is answered only if doctor asks for the default values."""
    answers: dict[str, dict[str, float] | None] = {"applied": {}, "defaults": None}
    original = Aws.client

    def client(self, service):
        fresh = service not in self._clients
        made = original(self, service)
        if service == "service-quotas" and fresh:
            stubber = Stubber(made)
            stubber.add_response(
                "list_service_quotas",
                {"Quotas": _quotas(answers["applied"] or {})},
                {"ServiceCode": "sagemaker"},
            )
            if answers["defaults"] is not None:
                stubber.add_response(
                    "list_aws_default_service_quotas",
                    {"Quotas": _quotas(answers["defaults"])},
                    {"ServiceCode": "sagemaker"},
                )
            stubber.activate()
        return made

    monkeypatch.setattr(Aws, "client", client)

    def set_quotas(applied: dict[str, float], defaults: dict[str, float] | None = None) -> None:
        answers["applied"], answers["defaults"] = applied, defaults

    set_quotas({f"{G5} for endpoint usage": 4})
    return set_quotas


def _quotas(values: dict[str, float]) -> list[dict]:
    return [
        {
            "ServiceCode": "sagemaker",
            "ServiceName": "Amazon SageMaker",
            "QuotaCode": f"L-{index:08X}",
            "QuotaName": name,
            "Value": value,
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
        }
        for index, (name, value) in enumerate(values.items())
    ]


# --- the world as a good account has it -----------------------------------------------


def bootstrap(qualifier: str = "hnb659fds", name: str = "CDKToolkit") -> None:
    body = json.loads(template({"BootstrapVersion": "28"}))
    body["Parameters"] = {"Qualifier": {"Type": "String", "Default": "hnb659fds"}}
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=name,
        TemplateBody=json.dumps(body),
        Parameters=[{"ParameterKey": "Qualifier", "ParameterValue": qualifier}],
    )


def publish_images(*only: ContainerImage) -> None:
    images = only or (VLLM, TEI)
    ecr = boto3.client("ecr", region_name=REGION)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {},
            "layers": [],
        }
    )
    for image in images:
        account = image.account(REGION)
        ecr.create_repository(repositoryName=image.repository, registryId=account)
        ecr.put_image(
            registryId=account,
            repositoryName=image.repository,
            imageTag=image.tag,
            imageManifest=manifest,
        )


def publish_layer(monkeypatch, versions: int = 30) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bootstrap", "#!/bin/sh\n")
    monkeypatch.setenv("MOTO_ACCOUNT_ID", LAYER_ACCOUNT)
    client = boto3.client("lambda", region_name=REGION)
    for _ in range(versions):
        client.publish_layer_version(
            LayerName="LambdaAdapterLayerArm64", Content={"ZipFile": buffer.getvalue()}
        )
    monkeypatch.delenv("MOTO_ACCOUNT_ID")
    theirs = lambda_backends[LAYER_ACCOUNT][REGION]._layers._layers
    lambda_backends[DEFAULT_ACCOUNT_ID][REGION]._layers._layers.update(theirs)


@pytest.fixture
def ready(aws, quotas, monkeypatch):
    bootstrap()
    publish_images()
    publish_layer(monkeypatch)


def doctor(app_dir: Path, *args: str):
    return runner.invoke(app, ["doctor", "--app-dir", str(app_dir), *args])


def doctor_json(app_dir: Path, *args: str) -> tuple[int, dict]:
    result = doctor(app_dir, "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def checks(document: dict) -> dict[str, dict]:
    return {c["id"]: c for c in document["checks"]}


def statuses(document: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in document["checks"]}


# --- all good ---------------------------------------------------------------------------


def test_all_good_exits_0_with_every_check_ok(ready, app_dir) -> None:
    result = doctor(app_dir)
    assert result.exit_code == 0, result.stdout + result.stderr
    out = result.stdout
    assert "emd doctor EMD in us-east-1 (account 123456789012)" in out
    assert "No blockers (0 warnings): ready for `cdk deploy --all`" in out
    for check in ("credentials", "CDKToolkit", "image vllm", "image tei", "quota ml.g5.xlarge"):
        assert check in out
    cells = [
        c.strip() for line in out.splitlines() if line.startswith("│") for c in line.split("│")
    ]
    assert "blocker" not in cells
    assert "warning" not in cells


def test_json_shape(ready, app_dir) -> None:
    code, document = doctor_json(app_dir)
    assert code == 0
    assert list(document) == [
        "prefix",
        "region",
        "account",
        "ok",
        "blockers",
        "warnings",
        "checks",
        "cost",
    ]
    assert document["prefix"] == "EMD"
    assert document["region"] == REGION
    assert document["account"] == DEFAULT_ACCOUNT_ID
    assert document["ok"] is True
    assert (document["blockers"], document["warnings"]) == (0, 0)
    for check in document["checks"]:
        assert {"id", "check", "status", "detail", "fix"} <= set(check)
        assert check["status"] == "ok", check
    assert list(statuses(document)) == [
        "context",
        "credentials",
        "region",
        "bootstrap",
        "image:vllm",
        "image:tei",
        "layer",
        f"quota:{G5}",
        "stack:EMD-API",
        f"stack:{QWEN_STACK}",
        f"endpoint:{QWEN_ENDPOINT}",
        "stack:EMD-Model-bge-m3-dev",
        f"endpoint:{BGE_ENDPOINT}",
        "cost",
    ]
    found = checks(document)
    assert found["credentials"]["account"] == DEFAULT_ACCOUNT_ID
    assert found["bootstrap"]["bootstrap_version"] == "28"
    assert found["image:vllm"]["uri"] == VLLM.uri(REGION)
    assert found["image:tei"]["models"] == ["bge-m3/dev"]
    assert found["layer"]["arn"] == (
        f"arn:aws:lambda:{REGION}:{LAYER_ACCOUNT}:layer:LambdaAdapterLayerArm64:30"
    )
    quota = found[f"quota:{G5}"]
    assert (quota["quota"], quota["value"], quota["needed"]) == (f"{G5} for endpoint usage", 4, 3)
    price = hourly_price(G5, REGION)
    assert price is not None
    cost = document["cost"]
    assert cost["hourly_usd"] == pytest.approx(2 * price)
    assert cost["daily_usd"] == pytest.approx(round(2 * price * 24, 2))
    assert cost["max_daily_usd"] == pytest.approx(round(3 * price * 24, 2))
    assert cost["unknown_prices"] == []
    assert cost["source"] == "https://aws.amazon.com/sagemaker/pricing/"
    assert [m["id"] for m in cost["models"]] == ["Qwen3-4B-Instruct-2507/dev", "bge-m3/dev"]
    assert cost["models"][0]["max_hourly_usd"] == pytest.approx(2 * price)


def test_an_update_of_our_own_deployment_is_fine(ready, app_dir) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(StackName="EMD-API", TemplateBody=template({"BaseURL": "https://x/v1"}))
    cfn.create_stack(
        StackName=QWEN_STACK, TemplateBody=template({"ModelId": "Qwen3-4B-Instruct-2507/dev"})
    )
    create_endpoint(QWEN_ENDPOINT, "ml.g4dn.xlarge", 1)  # moto refuses ml.g5
    sm = boto3.client("sagemaker", region_name=REGION)
    arn = sm.describe_endpoint(EndpointName=QWEN_ENDPOINT)["EndpointArn"]
    # CloudFormation tags what it creates with the stack's name.
    sm.add_tags(
        ResourceArn=arn, Tags=[{"Key": "aws:cloudformation:stack-name", "Value": QWEN_STACK}]
    )
    code, document = doctor_json(app_dir)
    assert code == 0, document
    found = checks(document)
    assert found["stack:EMD-API"]["detail"] == "exists (CREATE_COMPLETE): will be updated"
    assert found[f"endpoint:{QWEN_ENDPOINT}"]["detail"] == (
        f"exists (InService), owned by {QWEN_STACK}"
    )


# --- blockers ---------------------------------------------------------------------------


def test_a_zero_quota_is_a_blocker_with_the_console_link(ready, app_dir, quotas) -> None:
    quotas({f"{G5} for endpoint usage": 0})
    code, document = doctor_json(app_dir)
    assert code == 1
    assert document["ok"] is False
    quota = checks(document)[f"quota:{G5}"]
    assert quota["status"] == "blocker"
    assert "no instance of this type allowed" in quota["detail"]
    assert quota["link"] == QUOTA_CONSOLE
    assert QUOTA_CONSOLE in quota["fix"]
    table = doctor(app_dir)
    assert table.exit_code == 1
    assert QUOTA_CONSOLE in table.stdout
    assert "1 blocker, 0 warnings: `cdk deploy --all` would fail" in table.stdout


def test_a_quota_below_max_capacity_is_a_blocker(ready, app_dir, quotas) -> None:
    quotas({f"{G5} for endpoint usage": 2})  # 2 for Qwen (max_capacity) + 1 for bge-m3
    code, document = doctor_json(app_dir)
    assert code == 1
    assert checks(document)[f"quota:{G5}"]["detail"] == (
        f"quota 2 in {REGION}, the context needs up to 3"
    )


def test_a_quota_without_an_applied_value_is_read_from_the_defaults(ready, app_dir, quotas) -> None:
    quotas({}, defaults={f"{G5} for endpoint usage": 0})
    code, document = doctor_json(app_dir)
    assert code == 1
    assert checks(document)[f"quota:{G5}"]["value"] == 0


def test_a_missing_bootstrap_stack_is_a_blocker(aws, quotas, monkeypatch, app_dir) -> None:
    publish_images()
    publish_layer(monkeypatch)
    code, document = doctor_json(app_dir)
    assert code == 1
    check = checks(document)["bootstrap"]
    assert check["status"] == "blocker"
    assert "not bootstrapped" in check["detail"]
    assert check["fix"] == f"npx cdk bootstrap aws://{DEFAULT_ACCOUNT_ID}/{REGION}"


def test_a_bootstrap_with_another_qualifier_is_a_blocker(aws, quotas, monkeypatch, app_dir) -> None:
    bootstrap(qualifier="custom123")
    publish_images()
    publish_layer(monkeypatch)
    code, document = doctor_json(app_dir)
    assert code == 1
    assert "qualifier custom123" in checks(document)["bootstrap"]["detail"]


def test_an_endpoint_of_the_same_name_from_elsewhere_is_a_blocker(ready, app_dir) -> None:
    create_endpoint(BGE_ENDPOINT, "ml.g4dn.xlarge", 1)  # made by hand, no stack
    code, document = doctor_json(app_dir)
    assert code == 1
    check = checks(document)[f"endpoint:{BGE_ENDPOINT}"]
    assert check["status"] == "blocker"
    assert check["detail"] == "exists (InService) and is not owned by stack EMD-Model-bge-m3-dev"
    assert f"aws sagemaker delete-endpoint --endpoint-name {BGE_ENDPOINT}" in check["fix"]


def test_an_endpoint_owned_by_another_stack_names_it(ready, app_dir) -> None:
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=QWEN_STACK, TemplateBody=template({"ModelId": "Qwen3-4B-Instruct-2507/dev"})
    )
    create_endpoint(QWEN_ENDPOINT, "ml.g4dn.xlarge", 1)
    sm = boto3.client("sagemaker", region_name=REGION)
    arn = sm.describe_endpoint(EndpointName=QWEN_ENDPOINT)["EndpointArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "aws:cloudformation:stack-name", "Value": "Other"}])
    code, document = doctor_json(app_dir)
    assert code == 1
    assert checks(document)[f"endpoint:{QWEN_ENDPOINT}"]["detail"].endswith("but by Other")


def test_a_stranger_stack_with_our_name_is_a_blocker(ready, app_dir) -> None:
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="EMD-API", TemplateBody=template({"SomethingElse": "x"})
    )
    code, document = doctor_json(app_dir)
    assert code == 1
    check = checks(document)["stack:EMD-API"]
    assert check["status"] == "blocker"
    assert "is not this deployment's stack" in check["detail"]
    assert "emd:prefix" in check["fix"]
    # Another prefix does not collide.
    assert doctor_json(app_dir, "-c", "emd:prefix=Team2")[0] == 0


def test_a_stack_of_another_model_under_our_name_is_a_blocker(ready, app_dir) -> None:
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=QWEN_STACK, TemplateBody=template({"ModelId": "Something/else"})
    )
    code, document = doctor_json(app_dir)
    assert code == 1
    assert checks(document)[f"stack:{QWEN_STACK}"]["status"] == "blocker"


def test_a_retained_log_group_without_its_stack_is_a_blocker(ready, app_dir) -> None:
    group = f"/aws/sagemaker/Endpoints/{BGE_ENDPOINT}"
    boto3.client("logs", region_name=REGION).create_log_group(logGroupName=group)
    code, document = doctor_json(app_dir)
    assert code == 1
    check = checks(document)[f"log-group:{group}"]
    assert check["status"] == "blocker"
    assert "--import-existing-resources" in check["fix"]


def test_a_model_stack_outside_the_context_is_a_warning(ready, app_dir) -> None:
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="EMD-Model-qwen3-8b-dev", TemplateBody=template({"ModelId": "Qwen3-8B/dev"})
    )
    code, document = doctor_json(app_dir)
    assert code == 0
    check = checks(document)["stack:EMD-Model-qwen3-8b-dev"]
    assert check["status"] == "warning"
    assert "cdk destroy EMD-Model-qwen3-8b-dev" in check["fix"]


def test_a_missing_image_tag_is_a_blocker(aws, quotas, monkeypatch, app_dir) -> None:
    bootstrap()
    publish_images(VLLM)
    boto3.client("ecr", region_name=REGION).create_repository(
        repositoryName=TEI.repository, registryId=TEI.account(REGION)
    )
    publish_layer(monkeypatch)
    code, document = doctor_json(app_dir)
    assert code == 1
    check = checks(document)["image:tei"]
    assert check["status"] == "blocker"
    assert "Requested image not found" in check["detail"]


def test_a_missing_adapter_layer_is_a_blocker(aws, quotas, app_dir) -> None:
    bootstrap()
    publish_images()
    code, document = doctor_json(app_dir)
    assert code == 1
    check = checks(document)["layer"]
    assert check["status"] == "blocker"
    assert "LambdaAdapterLayerArm64:30 does not exist" in check["detail"]


def test_context_overrides_and_errors(ready, app_dir) -> None:
    code, document = doctor_json(app_dir, "-c", "emd:models=[]")
    assert code == 0
    assert checks(document)["context"]["detail"] == "prefix EMD, 0 models (the API only)"
    assert document["cost"]["hourly_usd"] == 0
    code, document = doctor_json(app_dir, "-c", 'emd:models=[{"id": "Qwen9"}]')
    assert code == 1
    assert statuses(document) == {"context": "blocker"}
    assert "unknown model 'Qwen9'" in checks(document)["context"]["detail"]
    result = doctor(app_dir, "-c", "nonsense")
    assert result.exit_code == 1
    assert "expected key=value" in result.stderr


def test_unknown_prices_show_a_question_mark(ready, app_dir, quotas) -> None:
    quotas({"ml.g6e.xlarge for endpoint usage": 1})
    models = json.dumps([{"id": "Qwen3-8B"}])  # default ml.g6e.xlarge: no price listed
    code, document = doctor_json(app_dir, "-c", f"emd:models={models}")
    assert code == 0, document
    assert document["cost"]["hourly_usd"] is None
    assert document["cost"]["unknown_prices"] == ["ml.g6e.xlarge"]
    assert checks(document)["cost"]["detail"].startswith("? (no price for ml.g6e.xlarge")


def test_a_region_without_the_image_or_the_layer_is_a_blocker(aws, quotas, app_dir) -> None:
    code, document = doctor_json(app_dir, "--region", "ap-southeast-7")
    assert code == 1
    assert document["region"] == "ap-southeast-7"
    image = checks(document)["image:tei"]
    assert image["status"] == "blocker"
    assert "not published in region ap-southeast-7" in image["detail"]
    code, document = doctor_json(app_dir, "--region", "us-gov-west-1")
    layer = checks(document)["layer"]
    assert layer["status"] == "blocker"
    assert "GovCloud" in layer["detail"]
