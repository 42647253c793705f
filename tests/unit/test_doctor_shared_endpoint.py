"""`emd doctor` with a shared endpoint (`emd:endpoints`, issue 18) against moto, with
the Service Quotas stub and fixtures of test_doctor_cli: the group's instances count
once toward the GPU quota and the hourly cost, whatever its members; its stack and
endpoint are checked like a model's, its members' are not (they have none)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from infra.prices import hourly_price
from tests.moto_deployment import REGION, create_endpoint
from tests.unit import test_doctor_cli as base

checks, doctor_json, statuses = base.checks, base.doctor_json, base.statuses
# Its fixtures, by the names the tests request.
aws, app_dir, quotas, ready = base.aws, base.app_dir, base.quotas, base.ready

G5 = "ml.g5.xlarge"
G5_12 = "ml.g5.12xlarge"
ENDPOINTS = {"shared-small": {"instance_type": G5_12, "max_instances": 2}}
MODELS = [
    {"id": "Qwen3-4B-Instruct-2507", "tag": "dev", "max_capacity": 2},
    {"id": "bge-m3", "endpoint": "shared-small"},
    {"id": "bge-reranker-v2-m3", "endpoint": "shared-small"},
]
SHARED_STACK = "EMD-Endpoint-shared-small"
SHARED = "emd-shared-small-shared"


def shared_doctor(app_dir: Path, models: list[dict] = MODELS) -> tuple[int, dict]:
    return doctor_json(
        app_dir,
        "-c",
        f"emd:endpoints={json.dumps(ENDPOINTS)}",
        "-c",
        f"emd:models={json.dumps(models)}",
    )


def test_a_group_counts_its_instances_once_for_quota_and_cost(ready, app_dir, quotas) -> None:
    quotas({f"{G5} for endpoint usage": 2, f"{G5_12} for endpoint usage": 2})
    code, document = shared_doctor(app_dir)
    assert code == 0, document
    found = checks(document)
    # max_instances (2), not one per member.
    assert found[f"quota:{G5_12}"]["needed"] == 2
    assert found[f"quota:{G5}"]["needed"] == 2
    ids = list(statuses(document))
    assert f"stack:{SHARED_STACK}" in ids and f"endpoint:{SHARED}" in ids
    # Members have no endpoint of their own to check.
    assert "endpoint:emd-bge-m3-dev" not in ids
    assert found[f"stack:{SHARED_STACK}"]["detail"] == "does not exist: will be created"
    assert found[f"endpoint:{SHARED}"]["detail"] == "does not exist: will be created"
    cost = document["cost"]
    g5, g5_12 = hourly_price(G5, REGION), hourly_price(G5_12, REGION)
    assert g5 is not None and g5_12 is not None
    assert [m["id"] for m in cost["models"]] == ["Qwen3-4B-Instruct-2507/dev"]
    (endpoint,) = cost["endpoints"]
    assert endpoint["endpoint"] == "shared-small"
    assert endpoint["members"] == ["bge-m3/dev", "bge-reranker-v2-m3/dev"]
    # No member scales to zero: one instance at rest, two at most.
    assert (endpoint["min_capacity"], endpoint["max_capacity"]) == (1, 2)
    assert cost["hourly_usd"] == pytest.approx(g5 + g5_12)
    assert cost["max_daily_usd"] == pytest.approx(round((2 * g5 + 2 * g5_12) * 24, 2))


def test_a_quota_below_the_groups_max_instances_is_a_blocker(ready, app_dir, quotas) -> None:
    quotas({f"{G5} for endpoint usage": 2, f"{G5_12} for endpoint usage": 1})
    code, document = shared_doctor(app_dir)
    assert code == 1
    assert checks(document)[f"quota:{G5_12}"]["detail"] == (
        f"quota 1 in {REGION}, the context needs up to 2"
    )


def test_a_group_whose_members_scale_to_zero_rests_at_no_instance(ready, app_dir, quotas) -> None:
    quotas({f"{G5_12} for endpoint usage": 2})
    models = [{"id": "bge-m3", "endpoint": "shared-small", "scale_to_zero": True}]
    code, document = shared_doctor(app_dir, models)
    assert code == 0, document
    assert document["cost"]["hourly_usd"] == 0
    (endpoint,) = document["cost"]["endpoints"]
    assert (endpoint["min_capacity"], endpoint["max_capacity"]) == (0, 2)


def test_the_shared_endpoint_of_our_own_endpoint_stack_is_fine(ready, app_dir, quotas) -> None:
    quotas({f"{G5} for endpoint usage": 2, f"{G5_12} for endpoint usage": 2})
    body = {
        "Description": "EMD gateway shared endpoint shared-small (ml.g5.12xlarge)",
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"EndpointName": {"Value": SHARED}},
    }
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(StackName=SHARED_STACK, TemplateBody=json.dumps(body))
    create_endpoint(SHARED, "ml.g4dn.xlarge", 1)  # moto refuses ml.g5
    sm = boto3.client("sagemaker", region_name=REGION)
    arn = sm.describe_endpoint(EndpointName=SHARED)["EndpointArn"]
    tag = {"Key": "aws:cloudformation:stack-name", "Value": SHARED_STACK}
    sm.add_tags(ResourceArn=arn, Tags=[tag])
    code, document = shared_doctor(app_dir)
    assert code == 0, document
    found = checks(document)
    assert found[f"stack:{SHARED_STACK}"]["detail"] == "exists (CREATE_COMPLETE): will be updated"
    assert found[f"endpoint:{SHARED}"]["detail"] == (f"exists (InService), owned by {SHARED_STACK}")


def test_a_shared_endpoint_of_another_stack_is_a_blocker(ready, app_dir, quotas) -> None:
    quotas({f"{G5} for endpoint usage": 2, f"{G5_12} for endpoint usage": 2})
    create_endpoint(SHARED, "ml.g4dn.xlarge", 1)
    sm = boto3.client("sagemaker", region_name=REGION)
    arn = sm.describe_endpoint(EndpointName=SHARED)["EndpointArn"]
    sm.add_tags(
        ResourceArn=arn, Tags=[{"Key": "aws:cloudformation:stack-name", "Value": "Someone-Else"}]
    )
    code, document = shared_doctor(app_dir)
    assert code == 1
    assert checks(document)[f"endpoint:{SHARED}"]["detail"] == (
        f"exists (InService) and is not owned by stack {SHARED_STACK} but by Someone-Else"
    )
