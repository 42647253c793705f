"""Where `emd keys` writes: Secrets Manager (moto, in process) and the local keys.json,
both read-modify-write with a version check."""

from __future__ import annotations

import json
import stat
import uuid

import boto3
import pytest
from moto import mock_aws

from emd import key_stores, keys
from emd.aws import Aws
from emd.errors import CliError, ConflictError
from emd.key_stores import FileKeys, SecretKeys, Snapshot, modify
from tests.moto_deployment import AWS_ENV_TO_CLEAR, DUMMY_AWS_ENV, REGION


@pytest.fixture
def aws(monkeypatch):
    for name in AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in DUMMY_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield Aws(REGION)


@pytest.fixture
def secret(aws) -> str:
    client = boto3.client("secretsmanager", region_name=REGION)
    return str(
        client.create_secret(Name="EMD-api-keys", SecretString=json.dumps({"default": "sk-d"}))[
            "ARN"
        ]
    )


def secret_document(arn: str) -> dict:
    value = boto3.client("secretsmanager", region_name=REGION).get_secret_value(SecretId=arn)
    return json.loads(value["SecretString"])


# --- Secrets Manager ---------------------------------------------------------------------


def test_secret_round_trip_creates_a_new_version(secret, aws) -> None:
    store = SecretKeys(aws, secret)
    before = store.read()
    assert before.document == {"default": "sk-d"}
    key = modify(store, lambda doc: keys.create(doc, "ci", ["a/dev"]))
    assert secret_document(secret) == {"default": "sk-d", "ci": {"key": key, "models": ["a/dev"]}}
    after = store.read()
    assert after.version != before.version
    assert store.current_version() == after.version


def test_secret_write_uses_a_fresh_client_request_token(secret, aws, monkeypatch) -> None:
    token = uuid.UUID("12345678-1234-5678-1234-567812345678")
    monkeypatch.setattr(key_stores.uuid, "uuid4", lambda: token)
    store = SecretKeys(aws, secret)
    store.write({"default": "sk-new"}, store.read())
    # The token becomes the version id: a retried request would not write twice.
    assert store.read().version == str(token)


def test_secret_conflict_when_another_admin_wrote_between_read_and_write(secret, aws) -> None:
    store = SecretKeys(aws, secret)
    snapshot = store.read()
    other = boto3.client("secretsmanager", region_name=REGION)
    other.put_secret_value(SecretId=secret, SecretString=json.dumps({"default": "sk-other"}))
    with pytest.raises(ConflictError, match="changed by someone else") as info:
        store.write({"default": "sk-d", "mine": "sk-mine-0000000"}, snapshot)
    assert "nothing was written" in str(info.value)
    assert secret_document(secret) == {"default": "sk-other"}  # theirs survives


def test_secret_conflict_detected_by_the_re_read_right_before_the_write(
    secret, aws, monkeypatch
) -> None:
    store = SecretKeys(aws, secret)
    monkeypatch.setattr(store, "current_version", lambda: "someone-elses-version")
    with pytest.raises(ConflictError):
        modify(store, lambda doc: keys.create(doc, "ci"))
    assert secret_document(secret) == {"default": "sk-d"}


def test_secret_missing_is_one_clear_error(aws) -> None:
    with pytest.raises(CliError, match="ResourceNotFoundException"):
        SecretKeys(aws, "no-such-secret").read()


def test_secret_holding_garbage_is_refused_not_overwritten(aws) -> None:
    client = boto3.client("secretsmanager", region_name=REGION)
    arn = client.create_secret(Name="bad", SecretString="not json")["ARN"]
    with pytest.raises(CliError, match="not valid JSON"):
        modify(SecretKeys(aws, arn), lambda doc: keys.create(doc, "ci"))
    assert client.get_secret_value(SecretId=arn)["SecretString"] == "not json"


# --- the local keys.json -----------------------------------------------------------------


def test_file_round_trip_with_mode_0600_and_no_leftovers(tmp_path) -> None:
    path = tmp_path / "emd" / "keys.json"
    store = FileKeys(path)
    assert store.read() == Snapshot({}, None)  # no file yet: no keys
    key = modify(store, lambda doc: keys.create(doc, "default"))
    assert json.loads(path.read_text()) == {"default": key}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.with_name("keys.json.lock").stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["keys.json", "keys.json.lock"]
    rotated = modify(store, lambda doc: keys.rotate(doc, "default"))
    assert json.loads(path.read_text()) == {"default": rotated}


def test_file_conflict_when_changed_between_read_and_write(tmp_path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"default": "sk-1"}))
    store = FileKeys(path)
    snapshot = store.read()
    path.write_text(json.dumps({"default": "sk-1", "theirs": "sk-2"}))
    with pytest.raises(ConflictError):
        store.write({"default": "sk-1", "mine": "sk-3"}, snapshot)
    assert json.loads(path.read_text()) == {"default": "sk-1", "theirs": "sk-2"}


def test_file_conflict_when_created_by_someone_else(tmp_path) -> None:
    path = tmp_path / "keys.json"
    store = FileKeys(path)
    snapshot = store.read()
    path.write_text(json.dumps({"default": "sk-1"}))
    with pytest.raises(ConflictError):
        store.write({"mine": "sk-3"}, snapshot)


def test_file_with_invalid_json_is_refused(tmp_path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{")
    with pytest.raises(CliError, match="not valid JSON"):
        FileKeys(path).read()
