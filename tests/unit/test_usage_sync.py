"""Reconciling API Gateway API keys and usage plans with the key document, against
moto's apigateway: creates, updates limits, replaces rotated keys, deletes revoked
ones, leaves other prefixes alone, and a second run changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from emd_proxy import usage_sync
from emd_proxy.auth import KeyDocumentError, KeyLimits
from emd_proxy.authorizer import usage_key
from emd_proxy.usage_sync import Deployment, PlanLimits, reconcile, remove_all

DEFAULT = KeyLimits(rate=10.0, burst=20)
DOC: dict[str, Any] = {
    "default": "sk-default-0123456789",
    "ci": {
        "key": "sk-ci-0123456789",
        "limits": {"rate": 2.0, "quota": 100, "quota_period": "MONTH"},
    },
    "batch": {"key": "sk-batch-0123456789", "models": ["a/b"]},
}


@pytest.fixture
def apigw(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("apigateway")


def make_api(client: Any) -> str:
    api = client.create_rest_api(name="emd")["id"]
    root = client.get_resources(restApiId=api)["items"][0]["id"]
    client.put_method(restApiId=api, resourceId=root, httpMethod="GET", authorizationType="NONE")
    client.put_integration(restApiId=api, resourceId=root, httpMethod="GET", type="MOCK")
    client.create_deployment(restApiId=api, stageName="prod")
    return api


def state(client: Any, prefix: str = "EMD") -> dict[str, Any]:
    """API key name -> (value, plan throttle, plan quota, plan stages)."""
    plans = [
        p
        for p in client.get_usage_plans()["items"]
        if p.get("tags", {}).get("emd:prefix") == prefix
    ]
    plan_of = {}
    for plan in plans:
        for key in client.get_usage_plan_keys(usagePlanId=plan["id"])["items"]:
            assert key["id"] not in plan_of, "a key is in two plans"
            plan_of[key["id"]] = plan
    out = {}
    for key in client.get_api_keys(includeValues=True)["items"]:
        if key.get("tags", {}).get("emd:prefix") != prefix:
            continue
        plan = plan_of[key["id"]]
        out[key["name"]] = (
            key["value"],
            plan.get("throttle"),
            plan.get("quota"),
            plan["apiStages"],
        )
    return out


def test_creates_one_api_key_per_key_and_one_plan_per_distinct_limits(apigw: Any) -> None:
    api = make_api(apigw)
    deployment = Deployment("EMD", api, "prod", DEFAULT)
    report = reconcile(apigw, DOC, deployment)
    assert report.changed and report.keys == 3
    assert sorted(report.created_keys) == ["EMD-batch", "EMD-ci", "EMD-default"]
    assert len(report.created_plans) == 2  # default and batch share the default limits
    got = state(apigw)
    stages = [{"apiId": api, "stage": "prod"}]
    assert got["EMD-default"] == (
        usage_key("EMD", "sk-default-0123456789"),
        {"rateLimit": 10.0, "burstLimit": 20},
        None,
        stages,
    )
    assert got["EMD-batch"][1:] == got["EMD-default"][1:]
    # ci's own rate (burst: ceil(rate)) and quota.
    assert got["EMD-ci"][1:] == (
        {"rateLimit": 2.0, "burstLimit": 2},
        {"limit": 100, "period": "MONTH"},
        stages,
    )


def test_a_second_run_changes_nothing(apigw: Any) -> None:
    deployment = Deployment("EMD", make_api(apigw), "prod", DEFAULT)
    reconcile(apigw, DOC, deployment)
    before = state(apigw)
    again = reconcile(apigw, DOC, deployment)
    assert not again.changed
    assert state(apigw) == before


def test_changed_limits_rotation_and_revocation(apigw: Any) -> None:
    deployment = Deployment("EMD", make_api(apigw), "prod", DEFAULT)
    reconcile(apigw, DOC, deployment)
    doc = json.loads(json.dumps(DOC))
    doc["default"] = "sk-default-rotated-0123"  # rotated
    del doc["batch"]  # revoked
    doc["ci"]["limits"] = {"rate": 5.0, "burst": 7}  # new limits, no quota
    report = reconcile(apigw, doc, deployment)
    assert report.replaced_keys == ["EMD-default"]
    assert report.deleted_keys == ["EMD-batch"]
    assert report.moved_keys == ["EMD-ci"]
    assert report.deleted_plans == ["emd-r2-b2-q100-per-month"]
    got = state(apigw)
    assert set(got) == {"EMD-default", "EMD-ci"}
    assert got["EMD-default"][0] == usage_key("EMD", "sk-default-rotated-0123")
    assert got["EMD-ci"][1:3] == ({"rateLimit": 5.0, "burstLimit": 7}, None)
    assert not reconcile(apigw, doc, deployment).changed


def test_new_default_limits_move_every_default_key(apigw: Any) -> None:
    api = make_api(apigw)
    reconcile(apigw, DOC, Deployment("EMD", api, "prod", DEFAULT))
    report = reconcile(apigw, DOC, Deployment("EMD", api, "prod", KeyLimits(quota=1000)))
    assert sorted(report.moved_keys) == ["EMD-batch", "EMD-default"]
    got = state(apigw)
    # No default rate: the plan has no throttle of its own (stage limits apply).
    assert got["EMD-default"][1:3] == (None, {"limit": 1000, "period": "DAY"})
    assert got["EMD-ci"][1] == {"rateLimit": 2.0, "burstLimit": 2}


def test_other_prefixes_and_foreign_resources_are_left_alone(apigw: Any) -> None:
    api = make_api(apigw)
    foreign_key = apigw.create_api_key(name="EMD-default", value="x" * 30, enabled=True)["id"]
    foreign_plan = apigw.create_usage_plan(name="emd-r10-b20-qnone")["id"]
    reconcile(apigw, {"default": "sk-team-0123456789"}, Deployment("Team1", api, "prod", DEFAULT))
    reconcile(apigw, DOC, Deployment("EMD", api, "prod", DEFAULT))
    remove_all(apigw, Deployment("EMD", api, "prod", DEFAULT))
    assert state(apigw) == {}
    assert list(state(apigw, "Team1")) == ["Team1-default"]
    assert apigw.get_api_key(apiKey=foreign_key)["name"] == "EMD-default"
    assert apigw.get_usage_plan(usagePlanId=foreign_plan)["name"] == "emd-r10-b20-qnone"


def test_a_bad_document_changes_nothing(apigw: Any) -> None:
    deployment = Deployment("EMD", make_api(apigw), "prod", DEFAULT)
    reconcile(apigw, DOC, deployment)
    before = state(apigw)
    with pytest.raises(KeyDocumentError):
        reconcile(apigw, {"default": {"key": "k", "limits": {"rate": -1}}}, deployment)
    assert state(apigw) == before


def test_two_names_with_one_key_string_are_refused_before_any_change(apigw: Any) -> None:
    deployment = Deployment("EMD", make_api(apigw), "prod", DEFAULT)
    with pytest.raises(ValueError, match="'a' and 'b' have the same key string"):
        reconcile(apigw, {"a": "sk-same-0123456789", "b": "sk-same-0123456789"}, deployment)
    assert state(apigw) == {}


def test_plan_limits_fill_from_the_default() -> None:
    assert PlanLimits.of(None, None) == PlanLimits(None, None, None, None)
    assert PlanLimits.of(KeyLimits(quota=5, quota_period="WEEK"), DEFAULT) == PlanLimits(
        10.0, 20, 5, "WEEK"
    )
    assert PlanLimits.of(KeyLimits(rate=0.5), KeyLimits(rate=9, burst=9, quota=3)) == PlanLimits(
        0.5, 1, 3, "DAY"
    )


@pytest.fixture
def lambda_env(apigw: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The key-sync Lambda's environment over moto: a secret, an API and its stage."""
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="emd-keys", SecretString=json.dumps(DOC))
    api = make_api(apigw)
    for name, value in {
        "EMD_API_KEY_SECRET_ID": "emd-keys",
        "EMD_PREFIX": "EMD",
        "EMD_REST_API_ID": api,
        "EMD_STAGE": "prod",
        "EMD_DEFAULT_KEY_LIMITS": json.dumps({"rate": 10, "burst": 20}),
    }.items():
        monkeypatch.setenv(name, value)
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(usage_sync, "_respond", lambda url, body: sent.append(body))
    return {"secrets": secrets, "sent": sent}


def cfn_event(request_type: str) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-custom-resource-response.example/x",
        "StackId": "arn:aws:cloudformation:us-east-1:1:stack/EMD-API/1",
        "RequestId": "r1",
        "LogicalResourceId": "KeySyncRun",
        "ResourceProperties": {},
    }


def test_custom_resource_create_update_and_delete(apigw: Any, lambda_env: dict[str, Any]) -> None:
    sent = lambda_env["sent"]
    usage_sync.handler(cfn_event("Create"), None)
    assert sent[-1]["Status"] == "SUCCESS"
    assert sent[-1]["PhysicalResourceId"] == "EMD-usage-plans"
    assert sent[-1]["Data"]["Keys"] == "3"
    assert len(state(apigw)) == 3
    # A document the parser refuses fails the deploy with the parser's message.
    lambda_env["secrets"].put_secret_value(
        SecretId="emd-keys", SecretString=json.dumps({"default": {"key": "k", "model": []}})
    )
    usage_sync.handler(cfn_event("Update"), None)
    assert sent[-1]["Status"] == "FAILED"
    assert 'unknown field "model"' in sent[-1]["Reason"]
    assert len(state(apigw)) == 3  # nothing changed
    usage_sync.handler(cfn_event("Delete"), None)
    assert sent[-1]["Status"] == "SUCCESS"
    assert state(apigw) == {}
    assert not [p for p in apigw.get_usage_plans()["items"] if p.get("tags")]


def test_a_failed_delete_still_answers_success(
    lambda_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("API Gateway is down")

    monkeypatch.setattr(usage_sync, "remove_all", broken)
    usage_sync.handler(cfn_event("Delete"), None)
    # Else the stack's deletion would hang on this resource; leftovers are tagged.
    assert lambda_env["sent"][-1]["Status"] == "SUCCESS"


def test_direct_invoke_from_emd_keys(apigw: Any, lambda_env: dict[str, Any]) -> None:
    report = usage_sync.handler({"action": "sync"}, None)
    assert report["keys"] == 3 and report["changed"] is True
    assert "sk-" not in json.dumps(report)  # names only, never keys
    assert usage_sync.handler({"action": "sync"}, None)["changed"] is False
    assert "error" in usage_sync.handler({"action": "other"}, None)
    lambda_env["secrets"].put_secret_value(SecretId="emd-keys", SecretString='{"a": 5}')
    assert 'key "a"' in usage_sync.handler({"action": "sync"}, None)["error"]
    assert lambda_env["sent"] == []  # no CloudFormation answer outside a custom resource
