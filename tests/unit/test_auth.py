from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from emd_proxy import auth
from emd_proxy.auth import KeyStore, Principal, parse_key_document
from emd_proxy.errors import AuthenticationError, InternalError

DOC = {"default": "sk-default", "scoped": {"key": "sk-scoped", "models": ["echo/local"]}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """Replaces the auth module's view of `time` only (not the process-wide module)."""
    fake = Clock()
    monkeypatch.setattr(auth, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


class CountingLoader:
    def __init__(self, *documents) -> None:
        self.documents = list(documents)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        document = self.documents[min(self.calls, len(self.documents)) - 1]
        if isinstance(document, BaseException):
            raise document
        return document


# --- parse_key_document ----------------------------------------------------------------


def test_parse_string_and_scoped_keys() -> None:
    keys = {k.principal.name: k for k in parse_key_document(DOC)}
    assert keys["default"].secret == b"sk-default"
    assert keys["default"].principal.models is None
    assert keys["scoped"].secret == b"sk-scoped"
    assert keys["scoped"].principal.models == frozenset({"echo/local"})


def test_a_scoped_key_without_models_sees_everything() -> None:
    [key] = parse_key_document({"k": {"key": "sk-1"}})
    assert key.principal.models is None


def test_a_scoped_key_with_an_empty_model_list_sees_nothing() -> None:
    [key] = parse_key_document({"k": {"key": "sk-1", "models": []}})
    assert key.principal.models == frozenset()


@pytest.mark.parametrize(
    "document",
    [
        {"k": 12},
        {"k": None},
        {"k": ["sk-1"]},
        {"k": {"models": ["a/b"]}},
        {"k": {"key": 5}},
        {"k": ""},
        {"k": {"key": ""}},
    ],
)
def test_invalid_documents_raise_value_error(document) -> None:
    with pytest.raises(ValueError, match="'k'"):
        parse_key_document(document)


# --- authenticate ----------------------------------------------------------------------


@pytest.fixture
def store() -> KeyStore:
    return KeyStore.static(DOC)


@pytest.mark.parametrize(
    "header", ["Bearer sk-default", "bearer sk-default", "BEARER sk-default", "Bearer  sk-default "]
)
def test_bearer_scheme_is_case_insensitive(store, header) -> None:
    assert store.authenticate(header) == Principal("default", None)


def test_scoped_principal_carries_its_models(store) -> None:
    principal = store.authenticate("Bearer sk-scoped")
    assert principal.name == "scoped"
    assert principal.models == frozenset({"echo/local"})
    assert isinstance(principal.models, frozenset)


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "sk-default", "Basic sk-default", "Token sk-default"],
)
def test_missing_or_malformed_header_is_rejected(store, header) -> None:
    with pytest.raises(AuthenticationError) as info:
        store.authenticate(header)
    assert info.value.status == 401
    assert info.value.code == "invalid_api_key"
    assert "Missing" in info.value.message


@pytest.mark.parametrize("key", ["sk-wrong", "sk-defaul", "sk-default2", "SK-DEFAULT", "é"])
def test_wrong_key_is_rejected(store, key) -> None:
    with pytest.raises(AuthenticationError) as info:
        store.authenticate(f"Bearer {key}")
    assert "Incorrect" in info.value.message
    assert key not in info.value.message


def test_static_store_fails_at_start_on_a_bad_document() -> None:
    with pytest.raises(InternalError):
        KeyStore.static({"k": 1})


def test_from_file(tmp_path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(DOC))
    assert KeyStore.from_file(path).authenticate("Bearer sk-scoped").name == "scoped"


# --- caching ---------------------------------------------------------------------------


def test_loader_is_called_once_within_the_ttl_and_again_after(clock) -> None:
    loader = CountingLoader({"a": "sk-a"}, {"b": "sk-b"})
    store = KeyStore(loader, ttl=60)
    assert loader.calls == 0  # nothing is loaded before the first check
    assert store.stale
    assert store.authenticate("Bearer sk-a").name == "a"
    clock.now += 59.9
    assert not store.stale
    assert store.authenticate("Bearer sk-a").name == "a"
    assert loader.calls == 1
    clock.now += 0.1
    assert store.stale
    assert store.authenticate("Bearer sk-b").name == "b"
    assert loader.calls == 2
    with pytest.raises(AuthenticationError):
        store.authenticate("Bearer sk-a")  # rotated away


def test_a_failing_reload_keeps_the_last_good_keys(clock) -> None:
    loader = CountingLoader({"a": "sk-a"}, RuntimeError("secret gone"), {"b": "sk-b"})
    store = KeyStore(loader, ttl=60)
    store.authenticate("Bearer sk-a")
    clock.now += 61
    assert store.authenticate("Bearer sk-a").name == "a"  # reload failed: old keys
    assert loader.calls == 2
    # The failure is retried sooner than a full ttl.
    clock.now += 5
    assert store.authenticate("Bearer sk-b").name == "b"
    assert loader.calls == 3


def test_an_invalid_document_on_reload_keeps_the_last_good_keys(clock) -> None:
    loader = CountingLoader({"a": "sk-a"}, {"a": 42})
    store = KeyStore(loader, ttl=60)
    store.authenticate("Bearer sk-a")
    clock.now += 61
    assert store.authenticate("Bearer sk-a").name == "a"
    assert loader.calls == 2


def test_a_failing_first_load_is_an_internal_error_without_details(clock) -> None:
    loader = CountingLoader(
        RuntimeError("arn:aws:secretsmanager:us-east-1:123456789012:secret:emd-keys"),
        {"a": "sk-a"},
    )
    store = KeyStore(loader, ttl=60)
    with pytest.raises(InternalError) as info:
        store.authenticate("Bearer sk-a")
    assert info.value.status == 500
    assert "arn:aws" not in info.value.message
    assert "123456789012" not in info.value.message
    assert "secret:" not in str(info.value.body())
    # Nothing cached: the next request tries again at once.
    assert store.authenticate("Bearer sk-a").name == "a"
    assert loader.calls == 2


# --- Secrets Manager (moto) ------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    with mock_aws():
        yield boto3.client("secretsmanager")


def test_from_secret_authenticates_and_follows_rotation_after_the_ttl(aws, clock) -> None:
    document = {"default": "k1", "scoped": {"key": "k2", "models": ["echo/local"]}}
    arn = aws.create_secret(Name="emd-api-keys", SecretString=json.dumps(document))["ARN"]
    store = KeyStore.from_secret(arn, ttl=60)
    assert store.authenticate("Bearer k1") == Principal("default", None)
    assert store.authenticate("Bearer k2") == Principal("scoped", frozenset({"echo/local"}))

    aws.put_secret_value(SecretId=arn, SecretString=json.dumps({"default": "k3"}))
    clock.now += 30
    assert store.authenticate("Bearer k1").name == "default"  # cached until the ttl
    with pytest.raises(AuthenticationError):
        store.authenticate("Bearer k3")

    clock.now += 30
    assert store.authenticate("Bearer k3").name == "default"
    for old in ("k1", "k2"):
        with pytest.raises(AuthenticationError):
            store.authenticate(f"Bearer {old}")


def test_from_secret_by_name(aws) -> None:
    aws.create_secret(Name="emd-api-keys", SecretString=json.dumps({"default": "k1"}))
    assert KeyStore.from_secret("emd-api-keys").authenticate("Bearer k1").name == "default"


def test_from_secret_missing_secret_is_an_internal_error(aws) -> None:
    with pytest.raises(InternalError) as info:
        KeyStore.from_secret("no-such-secret").authenticate("Bearer k1")
    assert "no-such-secret" not in info.value.message
