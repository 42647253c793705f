"""`emd status` for scale-to-zero models (issue 18): copy counts, scale state, last
wake and cost now versus at full scale, in the JSON and the table.

Stacks, endpoints and the `WakeSeconds` metric are moto's (put_metric_data,
list_metrics and get_metric_statistics run for real). moto 5.2.5 does not implement
inference components, so DescribeInferenceComponent alone is answered by botocore's
Stubber on the CLI's SageMaker client; its other calls (DescribeEndpoint) go on to
moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from typer.testing import CliRunner

from emd import status_cmd
from emd.aws import Aws
from emd.cli import app
from emd.status_scale import scale_state
from tests.moto_deployment import (
    AWS_ENV_TO_CLEAR,
    DUMMY_AWS_ENV,
    REGION,
    ModelSpec,
    create_api_stack,
    create_endpoint,
    create_model_stack,
    endpoint_name,
    endpoint_object,
    set_endpoint,
    stack_name,
    template,
)

PRICE = 0.7364  # ml.g4dn.xlarge, us-east-1, infra/prices.py
NOW = datetime.now(UTC)
ARN = f"arn:aws:sagemaker:{REGION}:123456789012"
runner = CliRunner()


class ComponentStubber(Stubber):
    """botocore's Stubber for DescribeInferenceComponent only (moto has no inference
    components); every other operation of the client is left to moto."""

    STUBBED = frozenset({"DescribeInferenceComponent"})

    def _assert_expected_params(self, model, params, context, **kwargs):  # type: ignore[no-untyped-def]
        if model.name in self.STUBBED:
            super()._assert_expected_params(model, params, context, **kwargs)

    def _get_response_handler(self, model, params, context, **kwargs):  # type: ignore[no-untyped-def]
        if model.name in self.STUBBED:
            return super()._get_response_handler(model, params, context, **kwargs)
        return None  # no answer here: botocore sends the request (to moto)


class Components:
    """The answers DescribeInferenceComponent gives, in call order (models are read in
    stack-name order); attached to each SageMaker client the CLI creates."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, dict[str, Any] | str]] = []
        self.stubbers: list[ComponentStubber] = []

    def add(self, name: str, status: str, current: int, desired: int, **extra: Any) -> None:
        self.answers.append((name, component(name, status, current, desired, **extra)))

    def fail(self, name: str, code: str) -> None:
        self.answers.append((name, code))

    def attach(self, client: Any) -> None:
        stubber = ComponentStubber(client)
        for name, answer in self.answers:
            params = {"InferenceComponentName": name}
            if isinstance(answer, str):
                stubber.add_client_error(
                    "describe_inference_component",
                    service_error_code=answer,
                    service_message=f"{answer} for {name}",
                    expected_params=params,
                )
            else:
                stubber.add_response("describe_inference_component", answer, params)
        stubber.activate()
        self.stubbers.append(stubber)

    def assert_all_read(self) -> None:
        for stubber in self.stubbers:
            stubber.assert_no_pending_responses()


def component(name: str, status: str, current: int, desired: int, **extra: Any) -> dict:
    endpoint = extra.pop("endpoint", name)
    return {
        "InferenceComponentName": name,
        "InferenceComponentArn": f"{ARN}:inference-component/{name}",
        "EndpointName": endpoint,
        "EndpointArn": f"{ARN}:endpoint/{endpoint}",
        "VariantName": "AllTraffic",
        "InferenceComponentStatus": status,
        "RuntimeConfig": {"DesiredCopyCount": desired, "CurrentCopyCount": current},
        "CreationTime": NOW - timedelta(days=1),
        "LastModifiedTime": NOW,
        **extra,
    }


@pytest.fixture
def aws(monkeypatch) -> Iterator[Components]:
    for name in AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in DUMMY_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    components = Components()
    created = Aws.client

    def client(self: Aws, service: str) -> Any:
        new = service not in self._clients
        made = created(self, service)
        if new and service == "sagemaker":
            components.attach(made)
        return made

    monkeypatch.setattr(Aws, "client", client)
    with mock_aws():
        yield components


def deploy_scale_to_zero(
    model_id: str,
    current: int,
    desired: int,
    *,
    maximum: int | None = 2,
    endpoint: str | None = None,
) -> str:
    """A model stack with the `InferenceComponentName` output (infra's scale-to-zero
    model) on an endpoint with managed instance scaling; returns the component name."""
    name = endpoint_name(model_id)
    endpoint = endpoint or name
    outputs = {
        "ModelId": model_id,
        "EndpointName": endpoint,
        "InferenceComponentName": name,
        "Engine": "vllm",
        "InstanceType": "ml.g4dn.xlarge",
        "Families": "chat",
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=stack_name("EMD", model_id), TemplateBody=template(outputs)
    )
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    if endpoint not in {e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]}:
        create_endpoint(endpoint, "ml.g4dn.xlarge", 1)
        set_endpoint(endpoint, "InService", current=current, desired=desired)
        if maximum is not None:
            # What DescribeEndpoint reports for `ManagedInstanceScaling` in the config.
            endpoint_object(endpoint).production_variants[0]["ManagedInstanceScaling"] = {
                "Status": "ENABLED",
                "MinInstanceCount": 0,
                "MaxInstanceCount": maximum,
            }
    return name


def put_wake(model_id: str, seconds: float, ago: timedelta, service: bool = True) -> None:
    """A `WakeSeconds` datapoint as the gateway's Powertools EMF line makes it: dimension
    `model`, plus `service` because the proxy Lambda sets POWERTOOLS_SERVICE_NAME."""
    dimensions = [{"Name": "model", "Value": model_id}]
    if service:
        dimensions.append({"Name": "service", "Value": "emd-proxy"})
    boto3.client("cloudwatch", region_name=REGION).put_metric_data(
        Namespace="EMD",
        MetricData=[
            {
                "MetricName": "WakeSeconds",
                "Dimensions": dimensions,
                "Timestamp": NOW - ago,
                "Value": seconds,
                "Unit": "Seconds",
            }
        ],
    )


def status_json(*args: str) -> tuple[int, dict[str, dict], str]:
    result = runner.invoke(app, ["status", "--json", *args])
    assert "Traceback" not in result.output
    document = json.loads(result.stdout)
    return result.exit_code, {m["id"]: m for m in document["models"]}, result.stderr


def table_rows(out: str) -> dict[str, list[str]]:
    return {
        cells[0]: cells
        for line in out.splitlines()
        if line.startswith("│")
        for cells in [[c.strip() for c in line.strip("│ ").split("│")]]
    }


# --- the state rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "current", "desired", "state"),
    [
        ("InService", 0, 0, "scaled_to_zero"),
        ("Updating", 0, 0, "scaled_to_zero"),
        ("InService", 0, 1, "waking"),
        ("Updating", 1, 2, "waking"),
        ("Updating", 0, 0 + 1, "waking"),
        ("Creating", 0, 0 + 1, "waking"),
        ("InService", 1, 1, "in_service"),
        ("Updating", 2, 1, "in_service"),  # scaling in still serves
        ("InService", None, 1, None),
        ("InService", 1, None, None),
    ],
)
def test_scale_state_rules(status, current, desired, state) -> None:
    assert scale_state(status, current, desired) == state


def test_the_local_waking_flag_wins() -> None:
    assert scale_state("InService", 0, 0, waking=True) == "waking"
    assert scale_state(None, None, None, waking=True) == "waking"


# --- AWS ---------------------------------------------------------------------------------


def test_json_of_models_scaled_to_zero_waking_and_in_service(aws) -> None:
    create_api_stack()
    create_model_stack(ModelSpec("bge-m3/dev", engine="tei", families=("embeddings",)))
    asleep = deploy_scale_to_zero("Alpha/dev", current=0, desired=0)
    waking = deploy_scale_to_zero("Beta/dev", current=0, desired=1, maximum=None)
    serving = deploy_scale_to_zero("Gamma/dev", current=1, desired=1)
    aws.add(asleep, "InService", 0, 0)
    aws.add(waking, "Updating", 0, 1)
    aws.add(serving, "InService", 1, 1)
    put_wake("Alpha/dev", 310.0, ago=timedelta(days=2))
    put_wake("Alpha/dev", 245.5, ago=timedelta(hours=3))  # the latest wins, not the largest
    put_wake("Gamma/dev", 120.0, ago=timedelta(minutes=30), service=False)
    put_wake("Gone/dev", 99.0, ago=timedelta(hours=1))  # not deployed here: ignored
    put_wake("Beta/dev", 500.0, ago=timedelta(days=9))  # older than the 7 days read

    code, models, stderr = status_json()
    assert code == 0, stderr
    assert stderr == ""
    aws.assert_all_read()
    pick = (
        "inference_component",
        "copy_count",
        "desired_copy_count",
        "instance_count",
        "scale_state",
        "last_wake_seconds",
        "hourly_cost_now",
        "hourly_cost_full",
    )
    got = {model_id: [row[k] for k in pick] for model_id, row in models.items()}
    assert got == {
        # Scaled to zero: nothing runs, nothing is paid; at full scale the endpoint's
        # managed-scaling maximum (2 instances).
        "Alpha/dev": ["emd-alpha-dev", 0, 0, 0, "scaled_to_zero", 245.5, 0.0, 2 * PRICE],
        # Waking, no maximum reported: one instance per wanted copy.
        "Beta/dev": ["emd-beta-dev", 0, 1, 0, "waking", None, 0.0, PRICE],
        "Gamma/dev": ["emd-gamma-dev", 1, 1, 1, "in_service", 120.0, PRICE, 2 * PRICE],
        "bge-m3/dev": [None, None, None, 1, None, None, PRICE, PRICE],
    }
    assert models["Gamma/dev"]["hourly_usd"] == PRICE  # the same as the cost now


def test_the_table_says_scaled_to_zero_and_waking(aws) -> None:
    create_api_stack()
    create_model_stack(ModelSpec("bge-m3/dev", engine="tei", families=("embeddings",)))
    aws.add(deploy_scale_to_zero("Alpha/dev", 0, 0), "InService", 0, 0)
    aws.add(deploy_scale_to_zero("Beta/dev", 0, 1), "Updating", 0, 1)
    aws.add(deploy_scale_to_zero("Gamma/dev", 1, 1), "InService", 1, 1)
    put_wake("Alpha/dev", 245.5, ago=timedelta(hours=3))
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "families" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == [
        "model",
        "families",
        "engine",
        "instance",
        "endpoint",
        "scale",
        "stack",
        "created",
        "$/hour",
    ]
    rows = table_rows(result.stdout)
    assert rows["Alpha/dev"][5] == "scaled to zero 0/0 copies, last wake 4m 06s"
    assert rows["Alpha/dev"][8] == "$0.00 (full $1.47)"
    assert rows["Beta/dev"][5] == "waking 0/1 copies"
    assert rows["Gamma/dev"][5] == "in service 1/1 copies"
    assert rows["Gamma/dev"][8] == "$0.74 (full $1.47)"
    assert rows["bge-m3/dev"][5] == "-"
    assert rows["bge-m3/dev"][8] == "$0.74"


def test_components_sharing_an_endpoint_are_paid_once(aws) -> None:
    create_api_stack()
    shared = "emd-small-models"
    aws.add(deploy_scale_to_zero("e5/dev", 1, 1, endpoint=shared), "InService", 1, 1)
    aws.add(deploy_scale_to_zero("rerank/dev", 1, 1, endpoint=shared), "InService", 1, 1)
    result = runner.invoke(app, ["status", "--json"])
    document = json.loads(result.stdout)
    assert [m["endpoint_name"] for m in document["models"]] == [shared, shared]
    assert [m["hourly_cost_now"] for m in document["models"]] == [PRICE, PRICE]
    assert document["total_daily_usd"] == pytest.approx(round(PRICE * 24, 2))


def test_an_unreadable_component_degrades_to_null_fields_with_a_note(aws) -> None:
    create_api_stack()
    aws.fail(deploy_scale_to_zero("Alpha/dev", 0, 0), "AccessDeniedException")
    aws.add(deploy_scale_to_zero("Beta/dev", 1, 1), "InService", 1, 1)
    code, models, stderr = status_json()
    assert code == 0
    alpha = models["Alpha/dev"]
    assert alpha["inference_component"] == "emd-alpha-dev"
    assert alpha["copy_count"] is alpha["desired_copy_count"] is alpha["scale_state"] is None
    assert alpha["instance_count"] == 0  # DescribeEndpoint still answered
    assert models["Beta/dev"]["scale_state"] == "in_service"
    [line] = stderr.strip().splitlines()
    assert line.startswith("emd status: warning: Alpha/dev: cannot read inference component ")
    assert "AccessDeniedException" in line


def test_unreadable_metrics_degrade_to_null_with_a_note(aws, monkeypatch) -> None:
    create_api_stack()
    aws.add(deploy_scale_to_zero("Alpha/dev", 0, 0), "InService", 0, 0)
    put_wake("Alpha/dev", 245.5, ago=timedelta(hours=3))
    created = Aws.client

    def client(self: Aws, service: str) -> Any:
        made = created(self, service)
        if service == "cloudwatch" and not hasattr(made, "_denied"):
            made._denied = Stubber(made)
            made._denied.add_client_error("list_metrics", "AccessDenied", "no cloudwatch:List")
            made._denied.activate()
        return made

    monkeypatch.setattr(Aws, "client", client)
    code, models, stderr = status_json()
    assert code == 0
    assert models["Alpha/dev"]["scale_state"] == "scaled_to_zero"
    assert models["Alpha/dev"]["last_wake_seconds"] is None
    assert stderr.startswith("emd status: warning: cannot read the WakeSeconds metric: ")
    assert "AccessDenied" in stderr


def test_a_failed_component_is_a_problem(aws) -> None:
    create_api_stack()
    name = deploy_scale_to_zero("Alpha/dev", 0, 1)
    aws.add(name, "Failed", 0, 1, FailureReason="out of GPU memory")
    code, _, stderr = status_json()
    assert code == 1
    assert stderr.strip() == (
        "emd status: Alpha/dev: inference component emd-alpha-dev failed: out of GPU memory"
    )


def test_no_component_calls_for_a_deployment_without_scale_to_zero(aws) -> None:
    """The stubber has no answers queued: any DescribeInferenceComponent would fail."""
    create_api_stack()
    create_model_stack(ModelSpec("bge-m3/dev"))
    code, models, stderr = status_json()
    assert code == 0, stderr
    assert stderr == ""
    assert models["bge-m3/dev"]["scale_state"] is None


def test_watch_waits_for_a_waking_model(aws, monkeypatch) -> None:
    create_api_stack()
    name = deploy_scale_to_zero("Alpha/dev", current=0, desired=1)
    aws.add(name, "Updating", 0, 1)  # first poll
    aws.add(name, "InService", 1, 1)  # second poll: the same client, the next answer
    pauses: list[float] = []

    def fake_sleep(seconds: float) -> None:
        pauses.append(seconds)
        set_endpoint(name, "InService", current=1, desired=1)

    monkeypatch.setattr(status_cmd, "sleep", fake_sleep)
    result = runner.invoke(app, ["status", "--watch", "--interval", "5", "--json"])
    assert result.exit_code == 0, result.stderr
    assert pauses == [5]
    aws.assert_all_read()
    progress = [line for line in result.stderr.splitlines() if line.startswith("emd status: ")]
    assert progress == [
        "emd status: waiting: 1 InService, 1 waking from zero",
        "emd status: done: 1 InService",
    ]
    [model] = json.loads(result.stdout)["models"]
    assert (model["scale_state"], model["instance_count"]) == ("in_service", 1)
