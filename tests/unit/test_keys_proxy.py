"""What `emd keys` changes reaches the proxy: a revoked key keeps working until the key
cache expires and is refused after, a new scoped key sees only its models. The proxy
reads the secret (moto) through KeyStore.from_secret, as the Lambdas do."""

from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest
from fastapi.testclient import TestClient
from moto import mock_aws
from typer.testing import CliRunner

from emd.cli import app as cli
from emd_proxy import auth
from emd_proxy.app import create_app
from emd_proxy.auth import KeyStore
from emd_proxy.registry import Registry, RegistryEntry
from emd_proxy.settings import Settings
from tests.moto_deployment import (
    AWS_ENV_TO_CLEAR,
    DEFAULT_KEY,
    DUMMY_AWS_ENV,
    REGION,
    ModelSpec,
    deploy,
)

CACHE_SECONDS = 5.0
runner = CliRunner()


class Clock:
    now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(auth, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


def entry(model_id: str) -> RegistryEntry:
    model, tag = model_id.split("/")
    return RegistryEntry(
        id=model_id,
        model=model,
        tag=tag,
        endpoint=f"emd-{model}-{tag}".lower(),
        engine="vllm",
        families=["chat"],
    )


@pytest.fixture
def proxy(monkeypatch, clock):
    for name in AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in DUMMY_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        arn = deploy([ModelSpec("Qwen3-8B/dev"), ModelSpec("bge-m3/dev")])
        app = create_app(
            Settings(key_cache_seconds=CACHE_SECONDS),
            registry=Registry([entry("Qwen3-8B/dev"), entry("bge-m3/dev")]),
            keys=KeyStore.from_secret(arn, ttl=CACHE_SECONDS),
        )
        with TestClient(app) as client:
            yield client


def models(client: TestClient, key: str) -> tuple[int, list[str]]:
    response = client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
    return response.status_code, [m["id"] for m in response.json().get("data", [])]


def emd(*args: str) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def test_revoked_key_stops_working_after_the_cache_window(proxy, clock) -> None:
    assert models(proxy, DEFAULT_KEY)[0] == 200  # the proxy has cached the keys
    key = emd("keys", "create", "--name", "app")
    assert models(proxy, key)[0] == 401  # not yet: the cache predates the create
    clock.now += CACHE_SECONDS
    assert models(proxy, key) == (200, ["Qwen3-8B/dev", "bge-m3/dev"])

    emd("keys", "revoke", "app")
    clock.now += CACHE_SECONDS - 0.1
    assert models(proxy, key)[0] == 200  # still cached: this is the documented delay
    clock.now += 0.1
    response = proxy.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert models(proxy, DEFAULT_KEY)[0] == 200  # the other keys are untouched


def test_rotated_key_replaces_the_old_one_after_the_window(proxy, clock) -> None:
    assert models(proxy, DEFAULT_KEY)[0] == 200
    new = emd("keys", "rotate", "default")
    clock.now += CACHE_SECONDS
    assert models(proxy, new)[0] == 200
    assert models(proxy, DEFAULT_KEY)[0] == 401


def test_scoped_key_sees_only_its_models(proxy, clock) -> None:
    key = emd("keys", "create", "--name", "team", "--models", "bge-m3/dev")
    clock.now += CACHE_SECONDS
    assert models(proxy, key) == (200, ["bge-m3/dev"])
    headers = {"Authorization": f"Bearer {key}"}
    hidden = proxy.get("/v1/models/Qwen3-8B/dev", headers=headers)
    assert hidden.status_code == 404
    assert hidden.json()["error"]["code"] == "model_not_found"
    chat = proxy.post(
        "/v1/chat/completions",
        headers=headers,
        json={"model": "Qwen3-8B/dev", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 404
    assert chat.json()["error"]["code"] == "model_not_found"
    assert proxy.get("/v1/models/bge-m3/dev", headers=headers).status_code == 200


def test_a_hand_edited_secret_with_a_misspelt_scope_is_never_a_wider_key(proxy, clock) -> None:
    """The old reader took {"model": [...]} as a key for every model. Now the proxy keeps
    the last good keys for at most EMD_KEY_STALE_MAX_SECONDS, then answers 503 without
    details; it never lets the misspelt key see anything."""
    assert models(proxy, DEFAULT_KEY)[0] == 200
    client = boto3.client("secretsmanager", region_name=REGION)
    [arn] = [s["ARN"] for s in client.list_secrets()["SecretList"]]
    bad = {"default": DEFAULT_KEY, "ci": {"key": "sk-ci-hand-edited", "model": ["bge-m3/dev"]}}
    client.put_secret_value(SecretId=arn, SecretString=json.dumps(bad))
    clock.now += CACHE_SECONDS
    assert models(proxy, "sk-ci-hand-edited")[0] == 401  # the last good keys
    assert models(proxy, DEFAULT_KEY)[0] == 200
    clock.now += 300
    response = proxy.get("/v1/models", headers={"Authorization": f"Bearer {DEFAULT_KEY}"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json() == {
        "error": {
            "message": "API keys are unavailable.",
            "type": "service_unavailable",
            "param": None,
            "code": "api_keys_unavailable",
        }
    }
    assert models(proxy, "sk-ci-hand-edited")[0] == 503

    client.put_secret_value(SecretId=arn, SecretString=json.dumps({"default": DEFAULT_KEY}))
    assert models(proxy, DEFAULT_KEY)[0] == 200  # a good document: served again at once
