from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from emd_proxy import auth
from emd_proxy.auth import (
    KeyDocumentError,
    KeyLimits,
    KeyStore,
    KeysUnavailableError,
    Principal,
    parse_key_document,
)
from emd_proxy.errors import AuthenticationError

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
    with pytest.raises(ValueError, match='key "k"'):
        parse_key_document(document)


def test_limits_parse_with_defaults() -> None:
    document = {
        "ci": {"key": "sk-1", "limits": {"rate": 5, "quota": 100}},
        "batch": {"key": "sk-2", "models": ["a/b"], "limits": {"rate": 0.5, "burst": 3}},
        "weekly": {"key": "sk-3", "limits": {"quota": 7, "quota_period": "WEEK"}},
        "empty": {"key": "sk-4", "limits": {}},
    }
    keys = {k.principal.name: k.principal for k in parse_key_document(document)}
    assert keys["ci"].limits == KeyLimits(rate=5.0, burst=None, quota=100, quota_period="DAY")
    assert keys["ci"].limits.effective_burst == 5
    assert keys["batch"].limits == KeyLimits(rate=0.5, burst=3)
    assert keys["batch"].limits.effective_burst == 3
    assert keys["batch"].models == frozenset({"a/b"})
    assert keys["weekly"].limits == KeyLimits(quota=7, quota_period="WEEK")
    assert keys["weekly"].limits.effective_burst is None
    assert keys["empty"].limits is None
    assert KeyLimits(rate=0.2).effective_burst == 1
    assert KeyLimits(rate=5, quota=9).to_document() == {
        "rate": 5,
        "quota": 9,
        "quota_period": "DAY",
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"key": "s", "model": ["a/dev"]},
            'key "ci": unknown field "model" (did you mean "models"?)',
        ),
        (
            {"key": "s", "Models": ["a/dev"]},
            'key "ci": unknown field "Models" (did you mean "models"?)',
        ),
        ({"key": "s", "models": "a/dev"}, 'key "ci": "models" must be a list of model ids'),
        ({"key": "s", "models": None}, 'key "ci": "models" must be a list'),
        ({"key": "s", "models": {"a/dev": 1}}, 'key "ci": "models" must be a list'),
        ({"key": "s", "models": ["a/dev", 3]}, 'key "ci": "models.1" must be a non-empty model id'),
        ({"key": "s", "models": [""]}, 'key "ci": "models.0" must be a non-empty model id'),
        ({"models": ["a/dev"]}, 'key "ci": missing field "key"'),
        ({"key": None}, 'key "ci": "key" must be a string, not null'),
        ({"key": "s", "limits": None}, 'key "ci": "limits" must be an object'),
        ({"key": "s", "limits": [5]}, 'key "ci": "limits" must be an object'),
        ({"key": "s", "limits": {"rate": "5"}}, 'key "ci": "limits.rate" must be a number > 0'),
        ({"key": "s", "limits": {"rate": True}}, 'key "ci": "limits.rate" must be a number > 0'),
        ({"key": "s", "limits": {"rate": 0}}, 'key "ci": "limits.rate" must be a number > 0'),
        ({"key": "s", "limits": {"rate": -1}}, 'key "ci": "limits.rate" must be a number > 0'),
        ({"key": "s", "limits": {"rate": float("inf")}}, '"limits.rate" must be a number > 0'),
        ({"key": "s", "limits": {"rate": None}}, '"limits.rate" must be a number > 0'),
        ({"key": "s", "limits": {"rate": 1, "burst": 2.0}}, '"limits.burst" must be a whole'),
        ({"key": "s", "limits": {"rate": 1, "burst": 0}}, '"limits.burst" must be a whole'),
        ({"key": "s", "limits": {"rate": 1, "burst": "2"}}, '"limits.burst" must be a whole'),
        ({"key": "s", "limits": {"burst": 2}}, '"limits.burst" needs "limits.rate"'),
        ({"key": "s", "limits": {"quota": "3"}}, '"limits.quota" must be a whole number >= 1'),
        ({"key": "s", "limits": {"quota": False}}, '"limits.quota" must be a whole number >= 1'),
        (
            {"key": "s", "limits": {"quota": 3, "quota_period": "day"}},
            '"limits.quota_period" must be',
        ),
        (
            {"key": "s", "limits": {"quota": 3, "quota_period": "YEAR"}},
            '"limits.quota_period" must',
        ),
        ({"key": "s", "limits": {"quota_period": "DAY"}}, '"limits.quota_period" needs'),
        ({"key": "s", "limits": {"rat": 1}}, 'unknown field "limits.rat" (did you mean "rate"?)'),
        ({"key": "s", "limits": {"zzz": 1}}, 'unknown field "limits.zzz" (known fields: rate'),
        (12, 'key "ci": expected the key string or an object with "key", not a number'),
    ],
)
def test_each_bad_key_is_refused_with_a_clear_message(value, message) -> None:
    with pytest.raises(KeyDocumentError) as info:
        parse_key_document({"ok": "sk-ok", "ci": value})
    assert message in str(info.value)
    assert "sk-ok" not in str(info.value)


def test_a_document_that_is_not_an_object_is_refused() -> None:
    for document in ([], "sk-1", None, 5):
        with pytest.raises(KeyDocumentError, match="must be a JSON object"):
            parse_key_document(document)


def test_messages_never_echo_a_value() -> None:
    with pytest.raises(KeyDocumentError) as info:
        parse_key_document({"ci": {"key": ["sk-secret-value"]}})
    assert "sk-secret-value" not in str(info.value)


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
    with pytest.raises(KeysUnavailableError):
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


def test_a_failing_first_load_is_a_503_without_details(clock) -> None:
    loader = CountingLoader(
        RuntimeError("arn:aws:secretsmanager:us-east-1:123456789012:secret:emd-keys"),
        {"a": "sk-a"},
    )
    store = KeyStore(loader, ttl=60)
    with pytest.raises(KeysUnavailableError) as info:
        store.authenticate("Bearer sk-a")
    assert info.value.status == 503
    assert info.value.body()["error"]["type"] == "service_unavailable"
    assert info.value.message == "API keys are unavailable."
    assert "arn:aws" not in info.value.message
    assert "123456789012" not in info.value.message
    assert "secret:" not in str(info.value.body())
    # Nothing cached: the next request tries again at once.
    assert store.authenticate("Bearer sk-a").name == "a"
    assert loader.calls == 2


def test_a_document_unparsable_from_the_start_denies_every_request(clock) -> None:
    # The old reader let {"model": [...]} through as a key for every model.
    loader = CountingLoader({"ci": {"key": "sk-ci", "model": ["a/dev"]}})
    store = KeyStore(loader, ttl=60)
    for _ in range(3):
        with pytest.raises(KeysUnavailableError):
            store.authenticate("Bearer sk-ci")
        clock.now += 61


def test_last_good_keys_are_served_at_most_the_stale_cap(clock) -> None:
    loader = CountingLoader({"a": "sk-a"}, RuntimeError("throttled"))
    store = KeyStore(loader, ttl=60, stale_max=300)
    store.authenticate("Bearer sk-a")
    clock.now += 299
    assert store.authenticate("Bearer sk-a").name == "a"  # reads fail: last good keys
    clock.now += 1
    with pytest.raises(KeysUnavailableError) as info:
        store.authenticate("Bearer sk-a")
    assert info.value.status == 503
    assert info.value.headers() == {"Retry-After": "5"}
    with pytest.raises(KeysUnavailableError):  # and stays refused while reads fail
        store.authenticate("Bearer sk-a")


def test_the_retry_never_runs_past_the_stale_cap(clock) -> None:
    loader = CountingLoader({"a": "sk-a"}, RuntimeError("throttled"))
    store = KeyStore(loader, ttl=60, stale_max=62)
    store.authenticate("Bearer sk-a")
    clock.now += 61
    assert store.authenticate("Bearer sk-a").name == "a"
    clock.now += 1  # less than the 5 s retry, but the cap is reached
    assert store.stale
    with pytest.raises(KeysUnavailableError):
        store.authenticate("Bearer sk-a")


def test_a_bad_document_on_reload_counts_against_the_cap_and_a_good_one_recovers(clock) -> None:
    current = {"document": {"a": "sk-a"}}
    store = KeyStore(lambda: current["document"], ttl=60, stale_max=100)
    store.authenticate("Bearer sk-a")
    current["document"] = {"a": {"key": "sk-a", "models": "x/y"}}
    clock.now += 61
    assert store.authenticate("Bearer sk-a").name == "a"  # last good keys, for now
    clock.now += 40
    with pytest.raises(KeysUnavailableError):
        store.authenticate("Bearer sk-a")
    current["document"] = {"a": "sk-a"}
    assert store.authenticate("Bearer sk-a").name == "a"


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


def test_from_secret_missing_secret_is_refused(aws) -> None:
    with pytest.raises(KeysUnavailableError) as info:
        KeyStore.from_secret("no-such-secret").authenticate("Bearer k1")
    assert "no-such-secret" not in info.value.message
