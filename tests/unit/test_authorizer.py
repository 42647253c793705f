"""The API Gateway Lambda authorizer against a moto Secrets Manager: who gets an Allow
with which usage identifier key, and who is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from emd_proxy import authorizer
from emd_proxy.authorizer import Authorizer, handler, presented_key, stage_resource, usage_key

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/v1/chat/completions"
DOC = {
    "default": "sk-default-0123456789",
    "scoped": {"key": "sk-scoped-0123456789", "models": ["echo/local"]},
    "limited": {"key": "sk-limited-0123456789", "limits": {"rate": 1.0, "quota": 5}},
}


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("secretsmanager")
        arn = client.create_secret(Name="EMD-keys", SecretString=json.dumps(DOC))["ARN"]
        monkeypatch.setenv("EMD_API_KEY_SECRET_ID", arn)
        monkeypatch.setenv("EMD_PREFIX", "EMD")
        authorizer._get.cache_clear()
        yield client


def event(**headers: str) -> dict[str, Any]:
    return {"type": "REQUEST", "methodArn": METHOD_ARN, "headers": headers}


def test_a_valid_key_is_allowed_on_the_whole_stage_with_its_usage_key(secret: Any) -> None:
    answer = handler(event(Authorization="Bearer sk-default-0123456789"), None)
    assert answer["principalId"] == "default"
    (statement,) = answer["policyDocument"]["Statement"]
    assert statement == {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        # Cached per key and reused on every route: the whole stage.
        "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/*",
    }
    assert answer["usageIdentifierKey"] == usage_key("EMD", "sk-default-0123456789")
    assert answer["context"] == {"keyName": "default"}
    # The EMD key itself never goes to API Gateway.
    assert "sk-default-0123456789" not in json.dumps(answer)


def test_scoped_and_limited_keys_are_allowed_the_app_checks_scopes(secret: Any) -> None:
    scoped = handler(event(authorization="bearer sk-scoped-0123456789"), None)
    assert scoped["principalId"] == "scoped"
    limited = handler(event(Authorization="Bearer sk-limited-0123456789"), None)
    assert limited["usageIdentifierKey"] == usage_key("EMD", "sk-limited-0123456789")


def test_anthropic_clients_x_api_key_is_taken(secret: Any) -> None:
    answer = handler(event(**{"x-api-key": "sk-default-0123456789"}), None)
    assert answer["principalId"] == "default"
    assert answer["usageIdentifierKey"] == usage_key("EMD", "sk-default-0123456789")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk-wrong"},
        {"Authorization": "Basic sk-default-0123456789"},
        {"Authorization": "Bearer "},
        {"x-api-key": "sk-default-012345678"},
    ],
)
def test_missing_or_wrong_keys_are_unauthorized(secret: Any, headers: dict[str, str]) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        handler(event(**headers), None)


def test_an_unparsable_key_document_refuses_everyone(secret: Any) -> None:
    secret.put_secret_value(
        SecretId="EMD-keys", SecretString=json.dumps({"default": {"key": "sk-x", "model": []}})
    )
    with pytest.raises(Exception) as raised:
        handler(event(Authorization="Bearer sk-x"), None)
    # Not "Unauthorized": API Gateway answers AUTHORIZER_FAILURE (a 500), never Allow.
    assert str(raised.value) != "Unauthorized"


def test_headers_may_be_null_and_derived_values_fit_api_gateway() -> None:
    assert presented_key(None) is None
    assert presented_key({"X-Api-Key": " k "}) == "k"
    value = usage_key("EMD", "sk-default")
    assert value.startswith("emd-") and 20 <= len(value) <= 128
    # Another prefix (another deployment in the account) gets another value.
    assert usage_key("Team1", "sk-default") != value
    assert stage_resource(METHOD_ARN).endswith("abc123/prod/*")


def test_the_key_store_gets_the_key_taken_out_of_its_header() -> None:
    reads = []

    class Store:
        def authenticate(self, authorization: str | None, api_key: str | None) -> Any:
            reads.append(api_key)
            return type("P", (), {"name": "default"})()

    allow = Authorizer(Store(), "EMD")  # type: ignore[arg-type]
    allow(event(Authorization="Bearer k1"))
    assert reads == ["k1"]
