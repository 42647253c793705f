"""`emd status` and `emd keys` as users run them: real subprocesses talking to moto as
a server (ThreadedMotoServer on 127.0.0.1, AWS_ENDPOINT_URL pointing at it) with dummy
credentials. The deployment is created with boto3; the states moto cannot reach are
set on its backend objects, which the threaded server shares with this process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from tests.integration.conftest import ECHO_COMPONENT
from tests.moto_deployment import (
    AWS_ENV_TO_CLEAR,
    BASE_URL,
    DEFAULT_KEY,
    DUMMY_AWS_ENV,
    REGION,
    ModelSpec,
    deploy,
    endpoint_name,
    set_endpoint,
    set_stack,
    stack_name,
    template,
)

QWEN = ModelSpec("Qwen3-8B/dev", instance_type="ml.p3.2xlarge")
BGE = ModelSpec("bge-m3/dev", engine="tei", families=("embeddings", "rerank"), instance_count=2)
SCALE_TO_ZERO_FIELDS = (
    "inference_component",
    "copy_count",
    "desired_copy_count",
    "instance_count",
    "scale_state",
    "last_wake_seconds",
    "hourly_cost_now",
    "hourly_cost_full",
)
# The scale-to-zero fields of a model without an inference component.
NOT_SCALE_TO_ZERO = {
    "inference_component": None,
    "copy_count": None,
    "desired_copy_count": None,
    "scale_state": None,
    "last_wake_seconds": None,
}


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def env(moto_url, monkeypatch, tmp_path) -> dict[str, str]:
    """The environment of the `emd` subprocesses; this process uses it too (for boto3)."""
    httpx.post(f"{moto_url}/moto-api/reset").raise_for_status()
    for name in AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    values = {
        **DUMMY_AWS_ENV,
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "EMD_CONFIG_DIR": str(tmp_path / "emd-config"),
        "NO_PROXY": "127.0.0.1,localhost",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return {k: v for k, v in os.environ.items() if k not in AWS_ENV_TO_CLEAR} | values


def emd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emd", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_status_json_against_a_moto_server(env) -> None:
    arn = deploy([QWEN, BGE])
    set_endpoint(endpoint_name(BGE.model_id), "Creating", current=0, desired=2)
    done = emd(env, "status", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    document = json.loads(done.stdout)
    models = document.pop("models")
    assert document == {
        "prefix": "EMD",
        "region": REGION,
        "base_url": BASE_URL,
        "api_key": "sk-e…Xy9",
        "api_key_secret_arn": arn,
        "total_daily_usd": None,  # no price for ml.p3.2xlarge in infra/prices.py
    }
    by_id = {m["id"]: m for m in models}
    created = {m["id"]: m.pop("created") for m in models}
    assert all(value and value.endswith("Z") for value in created.values())
    assert by_id["Qwen3-8B/dev"] == {
        "id": "Qwen3-8B/dev",
        "families": ["chat"],
        "engine": "vllm",
        "instance_type": "ml.p3.2xlarge",
        "instance_count": 1,
        "endpoint_name": "emd-qwen3-8b-dev",
        "endpoint_status": "InService",
        "failure_reason": None,
        "stack_name": "EMD-Model-qwen3-8b-dev",
        "stack_status": "CREATE_COMPLETE",
        "hourly_usd": None,
        **NOT_SCALE_TO_ZERO,
        "hourly_cost_now": None,
        "hourly_cost_full": None,
    }
    assert by_id["bge-m3/dev"] == {
        "id": "bge-m3/dev",
        "families": ["embeddings", "rerank"],
        "engine": "tei",
        "instance_type": "ml.g4dn.xlarge",
        "instance_count": 0,
        "endpoint_name": "emd-bge-m3-dev",
        "endpoint_status": "Creating",
        "failure_reason": None,
        "stack_name": "EMD-Model-bge-m3-dev",
        "stack_status": "CREATE_COMPLETE",
        "hourly_usd": 0.0,  # no instance running yet
        **NOT_SCALE_TO_ZERO,
        "hourly_cost_now": 0.0,
        "hourly_cost_full": pytest.approx(2 * 0.7364),  # the two it is creating
    }
    shown = json.loads(emd(env, "status", "--json", "--show-key").stdout)
    assert shown["api_key"] == DEFAULT_KEY


def test_status_table_against_a_moto_server(env) -> None:
    deploy([QWEN])
    done = emd(env, "status")
    assert done.returncode == 0, done.stderr
    assert f"Base URL: {BASE_URL}" in done.stdout
    assert "sk-e…Xy9" in done.stdout
    row = next(line for line in done.stdout.splitlines() if "Qwen3-8B/dev" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells[:6] == [
        "Qwen3-8B/dev",
        "chat",
        "vllm",
        "ml.p3.2xlarge x 1",
        "InService",
        "CREATE_COMPLETE",
    ]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda: None, "no stacks named EMD-API or EMD-Model-* in us-east-1"),
        (
            lambda: (
                deploy([QWEN]),
                set_stack(stack_name("EMD", QWEN.model_id), "ROLLBACK_COMPLETE", "Quota"),
            ),
            "stack EMD-Model-qwen3-8b-dev is ROLLBACK_COMPLETE: Quota",
        ),
        (
            lambda: (
                deploy([QWEN]),
                set_endpoint(endpoint_name(QWEN.model_id), "Failed", reason="OOM"),
            ),
            "endpoint emd-qwen3-8b-dev failed: OOM",
        ),
        (
            lambda: (
                deploy([QWEN]),
                boto3.client("sagemaker", region_name=REGION).delete_endpoint(
                    EndpointName=endpoint_name(QWEN.model_id)
                ),
            ),
            "endpoint emd-qwen3-8b-dev does not exist",
        ),
    ],
    ids=["no-stacks", "rollback", "endpoint-failed", "endpoint-missing"],
)
def test_status_errors_are_one_line_with_exit_code_1(env, setup, expected) -> None:
    setup()
    done = emd(env, "status", "--json")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("emd status: ")
    assert expected in line


def test_status_without_credentials(env) -> None:
    bare = {k: v for k, v in env.items() if not k.startswith(("AWS_ACCESS", "AWS_SECRET"))}
    bare.pop("AWS_SESSION_TOKEN", None)
    done = emd(bare, "status")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("emd status: no AWS credentials found")
    assert len(done.stderr.strip().splitlines()) == 1


def test_keys_round_trip_against_a_moto_server(env) -> None:
    arn = deploy([QWEN, BGE])
    client = boto3.client("secretsmanager", region_name=REGION)

    def stored() -> dict:
        return json.loads(client.get_secret_value(SecretId=arn)["SecretString"])

    created = emd(env, "keys", "create", "--name", "ci", "--models", "bge-m3/dev")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert stored()["ci"] == {"key": key, "models": ["bge-m3/dev"]}

    listed = json.loads(emd(env, "keys", "list", "--json").stdout)
    assert listed == [
        {"name": "ci", "models": ["bge-m3/dev"], "limits": None, "key": f"sk-e…{key[-3:]}"},
        {"name": "default", "models": None, "limits": None, "key": "sk-e…Xy9"},
    ]
    rotated = emd(env, "keys", "rotate", "ci").stdout.strip()
    assert stored()["ci"] == {"key": rotated, "models": ["bge-m3/dev"]}
    assert emd(env, "keys", "revoke", "ci").returncode == 0
    assert stored() == {"default": DEFAULT_KEY}
    last = emd(env, "keys", "revoke", "default")
    assert last.returncode == 1
    assert "last key" in last.stderr


# --- scale to zero: SageMaker from the local control plane --------------------------------


def test_status_of_a_scale_to_zero_model_over_the_wire(env, s2z_gateway, monkeypatch) -> None:
    """moto 5.2.5 has no inference components, so SageMaker here is emd/local's control
    plane (AWS_ENDPOINT_URL_SAGEMAKER: DescribeEndpoint and DescribeInferenceComponent
    in SageMaker's JSON protocol) and everything else moto; `emd status --json` runs as
    a process while the component sleeps, wakes and serves."""
    components = s2z_gateway.stack.components
    monkeypatch.setattr(components, "idle_after", 600.0)
    monkeypatch.setattr(components, "simulated_load_seconds", 5.0)  # time to look
    control_url = s2z_gateway.stack.control_url
    deploy([])
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="EMD-Model-echo-local",
        TemplateBody=template(
            {
                "ModelId": "echo/local",
                "EndpointName": ECHO_COMPONENT,
                "InferenceComponentName": ECHO_COMPONENT,
                "Engine": "vllm",
                "InstanceType": "ml.g4dn.xlarge",
                "Families": "chat",
            }
        ),
    )
    boto3.client("cloudwatch", region_name=REGION).put_metric_data(
        Namespace="EMD",
        MetricData=[
            {
                "MetricName": "WakeSeconds",
                "Dimensions": [
                    {"Name": "model", "Value": "echo/local"},
                    {"Name": "service", "Value": "emd-proxy"},
                ],
                "Value": 187.0,
                "Unit": "Seconds",
            }
        ],
    )
    status_env = env | {"AWS_ENDPOINT_URL_SAGEMAKER": control_url}

    def row() -> dict:
        done = emd(status_env, "status", "--json")
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        [model] = json.loads(done.stdout)["models"]
        return model

    s2z_gateway.stack.scale_to_zero(ECHO_COMPONENT)
    asleep = row()
    assert {k: asleep[k] for k in SCALE_TO_ZERO_FIELDS} == {
        "inference_component": ECHO_COMPONENT,
        "copy_count": 0,
        "desired_copy_count": 0,
        "instance_count": 0,
        "scale_state": "scaled_to_zero",
        "last_wake_seconds": 187.0,
        "hourly_cost_now": 0.0,
        "hourly_cost_full": 0.7364,  # MaxInstanceCount 1 of ml.g4dn.xlarge
    }
    boto3.client(
        "sagemaker", region_name=REGION, endpoint_url=control_url
    ).update_inference_component_runtime_config(
        InferenceComponentName=ECHO_COMPONENT, DesiredRuntimeConfig={"CopyCount": 1}
    )
    waking = row()
    assert (waking["scale_state"], waking["copy_count"], waking["desired_copy_count"]) == (
        "waking",
        0,
        1,
    )
    table = emd(status_env, "status").stdout
    assert "waking 0/1 copies, last wake 3m 07s" in table
    deadline = time.monotonic() + 30
    while (awake := row())["scale_state"] != "in_service":
        assert time.monotonic() < deadline, awake
        time.sleep(0.05)
    assert (awake["copy_count"], awake["instance_count"], awake["hourly_cost_now"]) == (
        1,
        1,
        0.7364,
    )
