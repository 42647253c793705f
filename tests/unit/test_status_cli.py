"""`emd status` in process against moto: stacks with DESIGN.md's outputs, endpoints in
several states (set on moto's backend objects where its API cannot get there), the
table and the JSON field by field, and every error path."""

from __future__ import annotations

import json
import re

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from emd import status_cmd
from emd.cli import app
from tests.moto_deployment import (
    AWS_ENV_TO_CLEAR,
    BASE_URL,
    DEFAULT_KEY,
    DUMMY_AWS_ENV,
    REGION,
    ModelSpec,
    create_api_stack,
    create_model_stack,
    delete_endpoint,
    deploy,
    endpoint_name,
    set_endpoint,
    set_stack,
    stack_name,
    template,
)

QWEN = ModelSpec("Qwen3-8B/dev", engine="vllm", families=("chat",), instance_type="ml.p3.2xlarge")
BGE = ModelSpec("bge-m3/dev", engine="tei", families=("embeddings", "rerank"), instance_count=2)
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

runner = CliRunner()


@pytest.fixture
def aws_env(monkeypatch):
    for name in AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in DUMMY_AWS_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def aws(aws_env):
    with mock_aws():
        yield


def status(*args: str):
    return runner.invoke(app, ["status", *args])


def status_json(*args: str) -> tuple[int, dict, str]:
    result = status("--json", *args)
    return result.exit_code, json.loads(result.stdout), result.stderr


def by_id(document: dict) -> dict[str, dict]:
    return {m["id"]: m for m in document["models"]}


# --- the JSON shape ----------------------------------------------------------------------


def test_json_follows_the_design_shape_field_by_field(aws) -> None:
    arn = deploy([QWEN, BGE])
    code, document, stderr = status_json()
    assert code == 0, stderr
    assert list(document) == [
        "prefix",
        "region",
        "base_url",
        "api_key",
        "api_key_secret_arn",
        "models",
        "total_daily_usd",
    ]
    assert document["prefix"] == "EMD"
    assert document["region"] == REGION
    assert document["base_url"] == BASE_URL
    assert document["api_key"] == "sk-e…Xy9"
    assert DEFAULT_KEY not in json.dumps(document)
    assert document["api_key_secret_arn"] == arn
    models = by_id(document)
    assert list(models) == ["bge-m3/dev", "Qwen3-8B/dev"]  # ordered by stack name
    qwen = models["Qwen3-8B/dev"]
    assert list(qwen) == [
        "id",
        "families",
        "engine",
        "instance_type",
        "instance_count",
        "endpoint_name",
        "endpoint_status",
        "failure_reason",
        "stack_name",
        "stack_status",
        "created",
        "hourly_usd",
        "inference_component",
        "copy_count",
        "desired_copy_count",
        "scale_state",
        "last_wake_seconds",
        "hourly_cost_now",
        "hourly_cost_full",
    ]
    # Not a scale-to-zero model: its scale fields are null, so every row has one shape.
    for name in ("inference_component", "copy_count", "desired_copy_count", "scale_state"):
        assert qwen[name] is None
    assert qwen["last_wake_seconds"] is None
    assert qwen["families"] == ["chat"]
    assert qwen["engine"] == "vllm"
    assert qwen["instance_type"] == "ml.p3.2xlarge"
    assert qwen["instance_count"] == 1
    assert qwen["endpoint_name"] == "emd-qwen3-8b-dev"
    assert qwen["endpoint_status"] == "InService"
    assert qwen["failure_reason"] is None
    assert qwen["stack_name"] == "EMD-Model-qwen3-8b-dev"
    assert qwen["stack_status"] == "CREATE_COMPLETE"
    assert ISO.fullmatch(qwen["created"])
    bge = models["bge-m3/dev"]
    assert bge["families"] == ["embeddings", "rerank"]
    assert bge["engine"] == "tei"
    assert bge["instance_type"] == "ml.g4dn.xlarge"
    assert bge["instance_count"] == 2
    assert bge["endpoint_name"] == "emd-bge-m3-dev"
    # Prices from infra/prices.py: two ml.g4dn.xlarge at 0.7364; ml.p3.2xlarge has no
    # price there, so the total is unknown rather than too low.
    assert bge["hourly_usd"] == pytest.approx(1.4728)
    assert qwen["hourly_usd"] is None
    # Costs apply to every model; an endpoint that is not scaling is at full scale.
    assert bge["hourly_cost_now"] == bge["hourly_cost_full"] == pytest.approx(1.4728)
    assert qwen["hourly_cost_now"] is qwen["hourly_cost_full"] is None
    assert document["total_daily_usd"] is None


def test_cost_per_model_and_per_day(aws) -> None:
    deploy([BGE, ModelSpec("whisper/dev", engine="whisperx", families=("audio",))])
    code, document, stderr = status_json()
    assert code == 0, stderr
    assert [m["hourly_usd"] for m in document["models"]] == [
        pytest.approx(2 * 0.7364),
        pytest.approx(0.7364),
    ]
    assert document["total_daily_usd"] == pytest.approx(round(3 * 0.7364 * 24, 2))
    table = status().stdout
    assert "$1.47" in table
    assert "$0.74" in table
    assert f"${3 * 0.7364 * 24:,.2f}/day" in table


def test_cost_of_a_missing_endpoint_is_zero_and_unknown_prices_show_a_question_mark(
    aws,
) -> None:
    deploy([QWEN, ModelSpec("bge-m3/dev", engine="tei", with_endpoint=False)])
    _, document, _ = status_json()
    models = by_id(document)
    assert models["bge-m3/dev"]["hourly_usd"] == 0.0
    assert models["Qwen3-8B/dev"]["hourly_usd"] is None
    assert document["total_daily_usd"] is None
    assert "Cost:     ? (no price known" in status().stdout


def test_show_key_prints_the_whole_key(aws) -> None:
    deploy([QWEN])
    _, document, _ = status_json("--show-key")
    assert document["api_key"] == DEFAULT_KEY


def test_a_scoped_default_key_is_read_too(aws) -> None:
    arn = deploy([QWEN])
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId=arn, SecretString=json.dumps({"default": {"key": "sk-scoped-default-1"}})
    )
    assert status_json("--show-key")[1]["api_key"] == "sk-scoped-default-1"


def test_endpoint_states_moto_cannot_reach(aws) -> None:
    failed = ModelSpec("Llama/dev")
    deploy([QWEN, BGE, failed])
    set_endpoint(endpoint_name(BGE.model_id), "Creating", current=0, desired=2)
    set_endpoint(endpoint_name(QWEN.model_id), "Updating", current=1, desired=3)
    set_endpoint(endpoint_name(failed.model_id), "Failed", reason="CUDA out of memory")
    code, document, stderr = status_json()
    models = by_id(document)
    assert models["bge-m3/dev"]["endpoint_status"] == "Creating"
    assert models["bge-m3/dev"]["instance_count"] == 0
    assert models["Qwen3-8B/dev"]["endpoint_status"] == "Updating"
    assert models["Qwen3-8B/dev"]["instance_count"] == 1
    assert models["Llama/dev"]["endpoint_status"] == "Failed"
    assert models["Llama/dev"]["failure_reason"] == "CUDA out of memory"
    # A failed endpoint is a problem: one line naming it and why, and exit code 1.
    assert code == 1
    assert stderr.strip() == (
        "emd status: Llama/dev: endpoint emd-llama-dev failed: CUDA out of memory"
    )


def test_table_shows_every_column(aws) -> None:
    deploy([QWEN, BGE])
    set_endpoint(endpoint_name(BGE.model_id), "Creating", current=0, desired=2)
    result = status()
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert f"Base URL: {BASE_URL}" in out
    assert "API key:  sk-e…Xy9  (--show-key prints it)" in out
    assert DEFAULT_KEY not in out
    header = next(line for line in out.splitlines() if "model" in line and "families" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == [
        "model",
        "families",
        "engine",
        "instance",
        "endpoint",
        "stack",
        "created",
        "$/hour",
    ]
    rows = {
        cells[0]: cells
        for line in out.splitlines()
        if line.startswith("│")
        for cells in [[c.strip() for c in line.strip("│ ").split("│")]]
    }
    qwen = rows["Qwen3-8B/dev"]
    assert qwen[1:6] == ["chat", "vllm", "ml.p3.2xlarge x 1", "InService", "CREATE_COMPLETE"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", qwen[6])
    bge = rows["bge-m3/dev"]
    assert bge[1:6] == [
        "embeddings, rerank",
        "tei",
        "ml.g4dn.xlarge x 0 (scaling to 2)",
        "Creating",
        "CREATE_COMPLETE",
    ]


def test_table_with_show_key(aws) -> None:
    deploy([QWEN])
    result = status("--show-key")
    assert f"API key:  {DEFAULT_KEY}\n" in result.stdout


def test_other_prefixes_and_unrelated_stacks_are_ignored(aws) -> None:
    deploy([QWEN])
    deploy([BGE], prefix="Staging")
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(StackName="EMD-Other", TemplateBody=template({"X": "y"}))
    assert list(by_id(status_json()[1])) == ["Qwen3-8B/dev"]
    code, document, _ = status_json("--prefix", "Staging")
    assert code == 0
    assert document["prefix"] == "Staging"
    assert list(by_id(document)) == ["bge-m3/dev"]


def test_two_prefixes_with_the_same_model_see_their_own_endpoints(aws) -> None:
    deploy([QWEN])
    deploy([QWEN], prefix="Staging")
    assert endpoint_name(QWEN.model_id, "Staging") == "staging-qwen3-8b-dev"
    set_endpoint(endpoint_name(QWEN.model_id), "InService")
    set_endpoint(endpoint_name(QWEN.model_id, "Staging"), "Failed", reason="OOM")
    code, document, _ = status_json()
    assert code == 0
    assert by_id(document)["Qwen3-8B/dev"]["endpoint_name"] == "emd-qwen3-8b-dev"
    assert by_id(document)["Qwen3-8B/dev"]["endpoint_status"] == "InService"
    code, document, _ = status_json("--prefix", "Staging")
    assert code == 1
    assert by_id(document)["Qwen3-8B/dev"]["endpoint_name"] == "staging-qwen3-8b-dev"
    assert by_id(document)["Qwen3-8B/dev"]["endpoint_status"] == "Failed"


def test_a_stack_without_outputs_names_its_prefixed_endpoint(aws) -> None:
    create_api_stack("Team-1")
    spec = ModelSpec("New/dev", with_endpoint=False)
    name = create_model_stack(spec, prefix="Team-1", outputs=False)
    set_stack(name, "CREATE_IN_PROGRESS")
    code, document, stderr = status_json("--prefix", "Team-1")
    assert code == 0, stderr
    [model] = document["models"]
    assert model["endpoint_name"] == "team-1-new-dev"


def test_every_page_of_stacks_is_read(aws) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    # moto pages DescribeStacks by 50: ours come after two pages of other stacks.
    for i in range(110):
        cfn.create_stack(StackName=f"other-{i:03}", TemplateBody=template({"X": "y"}))
    deploy([QWEN, BGE])
    code, document, _ = status_json()
    assert code == 0
    assert document["base_url"] == BASE_URL
    assert set(by_id(document)) == {"Qwen3-8B/dev", "bge-m3/dev"}


def test_region_comes_from_the_aws_config_or_the_option(aws) -> None:
    deploy([QWEN])
    result = status("--region", "eu-west-1")
    assert result.exit_code == 1
    assert "no stacks named EMD-API or EMD-Model-* in eu-west-1" in result.stderr


def test_a_model_stack_still_creating_has_no_outputs_yet(aws) -> None:
    create_api_stack()
    name = create_model_stack(ModelSpec("New/dev", with_endpoint=False), outputs=False)
    set_stack(name, "CREATE_IN_PROGRESS")
    code, document, stderr = status_json()
    assert code == 0, stderr
    [model] = document["models"]
    assert model["id"] is None
    assert model["families"] == []
    assert model["endpoint_name"] == "emd-new-dev"  # follows from the stack name
    assert model["endpoint_status"] == "Missing"
    assert model["stack_status"] == "CREATE_IN_PROGRESS"
    assert model["created"] is None
    assert "EMD-Model-new-dev" in status().stdout  # named by its stack in the table


def test_secret_unreadable_is_a_warning_not_a_failure(aws) -> None:
    arn = deploy([QWEN])
    boto3.client("secretsmanager", region_name=REGION).delete_secret(
        SecretId=arn, ForceDeleteWithoutRecovery=True
    )
    code, document, stderr = status_json()
    assert code == 0
    assert document["api_key"] is None
    assert stderr.startswith("emd status: warning: cannot read the API key from arn:aws:")
    assert "ResourceNotFoundException" in stderr


# --- errors: one line, exit code 1, no traceback -----------------------------------------


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_no_credentials(aws_env, monkeypatch, tmp_path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    result = status()
    assert_one_line_error(result, "emd status: no AWS credentials found", "aws configure")
    assert result.stdout == ""


def test_no_region(aws_env, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    assert_one_line_error(status(), "no AWS region", "--region")


def test_unknown_profile(aws_env, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_PROFILE", "nobody")
    assert_one_line_error(status(), "AWS profile not found: nobody")


def test_no_stacks_says_how_to_deploy(aws) -> None:
    result = status("--json")
    assert_one_line_error(result, "no stacks named EMD-API or EMD-Model-*", "cdk deploy --all")
    assert result.stdout == ""


def test_api_stack_in_rollback_shows_its_reason_and_first_failure(aws) -> None:
    deploy([QWEN])
    set_stack(
        "EMD-API",
        "UPDATE_ROLLBACK_COMPLETE",
        "The following resource(s) failed to update: [ChatFunction].",
        ("ChatFunction", "AWS::Lambda::Function", "Layer version arn:... does not exist"),
    )
    code, document, stderr = status_json()
    assert code == 1
    assert document["base_url"] == BASE_URL  # still reported
    assert stderr.strip() == (
        "emd status: stack EMD-API is UPDATE_ROLLBACK_COMPLETE: The following resource(s) "
        "failed to update: [ChatFunction].; first failure: ChatFunction "
        "(AWS::Lambda::Function) CREATE_FAILED: Layer version arn:... does not exist"
    )


def test_model_stack_rolled_back(aws) -> None:
    create_api_stack()
    name = create_model_stack(ModelSpec("Broken/dev", with_endpoint=False))
    set_stack(
        name,
        "ROLLBACK_COMPLETE",
        "The following resource(s) failed to create: [Endpoint].",
        ("Endpoint", "AWS::SageMaker::Endpoint", "ResourceLimitExceeded: no ml.g5 quota"),
    )
    code, document, stderr = status_json()
    assert code == 1
    [model] = document["models"]
    assert model["stack_status"] == "ROLLBACK_COMPLETE"
    assert model["endpoint_status"] == "Missing"
    [line] = stderr.strip().splitlines()
    assert line.startswith(
        "emd status: Broken/dev: stack EMD-Model-broken-dev is ROLLBACK_COMPLETE"
    )
    assert "first failure: Endpoint (AWS::SageMaker::Endpoint) CREATE_FAILED: " in line
    assert "ResourceLimitExceeded: no ml.g5 quota" in line
    assert "cancelled" not in line


def test_failed_stack_without_events_still_shows_its_reason(aws) -> None:
    deploy([QWEN])
    set_stack(stack_name("EMD", QWEN.model_id), "CREATE_FAILED", "Template error")
    result = status()
    assert result.exit_code == 1
    assert "is CREATE_FAILED: Template error" in result.stderr
    assert "first failure" not in result.stderr


def test_endpoint_missing_although_its_stack_is_complete(aws) -> None:
    deploy([QWEN])
    delete_endpoint(endpoint_name(QWEN.model_id))
    result = status()
    assert result.exit_code == 1
    assert "Missing" in result.stdout
    assert result.stderr.strip() == (
        "emd status: Qwen3-8B/dev: endpoint emd-qwen3-8b-dev does not exist although stack "
        "EMD-Model-qwen3-8b-dev is CREATE_COMPLETE: redeploy with "
        "`cdk deploy EMD-Model-qwen3-8b-dev`"
    )


def test_api_stack_missing_but_models_exist(aws) -> None:
    create_model_stack(QWEN)
    code, document, stderr = status_json()
    assert code == 1
    assert document["base_url"] is None
    assert document["api_key"] is None
    assert "the API stack EMD-API was not found" in stderr


def test_failure_reasons_are_printed_verbatim_not_as_markup(aws) -> None:
    deploy([QWEN])
    set_endpoint(endpoint_name(QWEN.model_id), "Failed", reason="[bold]x[/bold] :secret:")
    assert "[bold]x[/bold] :secret:" in status().stderr


# --- --watch -----------------------------------------------------------------------------


def test_watch_polls_until_every_endpoint_is_in_service_or_failed(aws, monkeypatch) -> None:
    failing = ModelSpec("Llama/dev")
    deploy([QWEN, BGE, failing])
    set_endpoint(endpoint_name(QWEN.model_id), "Creating")
    set_endpoint(endpoint_name(BGE.model_id), "Creating")
    set_endpoint(endpoint_name(failing.model_id), "Creating")
    steps = [
        lambda: set_endpoint(endpoint_name(QWEN.model_id), "InService"),
        lambda: set_endpoint(endpoint_name(failing.model_id), "Failed", reason="bad image"),
        lambda: set_endpoint(endpoint_name(BGE.model_id), "InService"),
    ]
    pauses: list[float] = []

    def fake_sleep(seconds: float) -> None:
        pauses.append(seconds)
        steps.pop(0)()

    monkeypatch.setattr(status_cmd, "sleep", fake_sleep)
    result = status("--watch", "--interval", "7", "--json")
    assert pauses == [7, 7, 7]  # stopped by itself after the last change
    assert not steps
    document = json.loads(result.stdout)
    assert {m["id"]: m["endpoint_status"] for m in document["models"]} == {
        "Qwen3-8B/dev": "InService",
        "bge-m3/dev": "InService",
        "Llama/dev": "Failed",
    }
    progress = [line for line in result.stderr.splitlines() if line.startswith("emd status: ")]
    assert progress[0] == "emd status: waiting: 3 Creating"
    assert "emd status: done: 1 Failed, 2 InService" in progress
    assert result.exit_code == 1  # the failed endpoint
    assert "Llama/dev: endpoint emd-llama-dev failed: bad image" in result.stderr


def test_watch_waits_for_a_stack_still_being_created(aws, monkeypatch) -> None:
    create_api_stack()
    spec = ModelSpec("New/dev", with_endpoint=False)
    name = create_model_stack(spec)
    set_stack(name, "CREATE_IN_PROGRESS")
    polls = 0

    def fake_sleep(_: float) -> None:
        nonlocal polls
        polls += 1
        if polls == 1:  # CloudFormation creates the endpoint
            from tests.moto_deployment import create_endpoint

            create_endpoint(endpoint_name(spec.model_id), spec.instance_type, 1)
            set_endpoint(endpoint_name(spec.model_id), "Creating")
        else:
            set_endpoint(endpoint_name(spec.model_id), "InService")
            set_stack(name, "CREATE_COMPLETE")

    monkeypatch.setattr(status_cmd, "sleep", fake_sleep)
    result = status("--watch")
    assert result.exit_code == 0, result.stderr
    assert polls == 2
    assert "InService" in result.stdout
    assert result.stdout.count("Base URL:") == 1  # piped: the final report once


def test_watch_returns_at_once_when_already_settled(aws, monkeypatch) -> None:
    deploy([QWEN])
    monkeypatch.setattr(status_cmd, "sleep", lambda _: pytest.fail("should not wait"))
    assert status("--watch").exit_code == 0


@pytest.mark.parametrize(
    ("stack_status", "failed", "in_progress"),
    [
        ("CREATE_COMPLETE", False, False),
        ("CREATE_IN_PROGRESS", False, True),
        ("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", False, True),
        ("ROLLBACK_IN_PROGRESS", True, True),
        ("ROLLBACK_COMPLETE", True, False),
        ("UPDATE_ROLLBACK_COMPLETE", True, False),
        ("CREATE_FAILED", True, False),
        ("DELETE_FAILED", True, False),
        ("REVIEW_IN_PROGRESS", False, False),  # a change set nobody ran: never moves on
    ],
)
def test_stack_states(stack_status, failed, in_progress) -> None:
    from emd.aws import Stack

    stack = Stack("EMD-API", stack_status, None, {})
    assert (stack.failed, stack.in_progress) == (failed, in_progress)
