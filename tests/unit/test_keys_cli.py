"""`emd keys` in process: round trips on the deployment's secret (moto) and on the local
keys.json, scoped keys, the last-key guard, and a concurrent-write conflict."""

from __future__ import annotations

import json
import stat

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from emd.cli import app
from emd.key_stores import SecretKeys
from tests.moto_deployment import (
    AWS_ENV_TO_CLEAR,
    DEFAULT_KEY,
    DUMMY_AWS_ENV,
    REGION,
    ModelSpec,
    deploy,
)

runner = CliRunner()


@pytest.fixture
def aws(monkeypatch, tmp_path):
    for name in AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in DUMMY_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("EMD_CONFIG_DIR", str(tmp_path / "config"))
    with mock_aws():
        yield


@pytest.fixture
def secret(aws) -> str:
    return deploy([ModelSpec("Qwen3-8B/dev"), ModelSpec("bge-m3/dev")])


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    directory = tmp_path / "config"
    monkeypatch.setenv("EMD_CONFIG_DIR", str(directory))
    return directory


def keys(*args: str):
    return runner.invoke(app, ["keys", *args])


def stored(arn: str) -> dict:
    client = boto3.client("secretsmanager", region_name=REGION)
    return json.loads(client.get_secret_value(SecretId=arn)["SecretString"])


def listed(*args: str) -> dict[str, dict]:
    result = keys("list", "--json", *args)
    assert result.exit_code == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


# --- on the deployment's secret ----------------------------------------------------------


def test_secret_round_trip_create_list_rotate_revoke(secret) -> None:
    created = keys("create", "--name", "ci", "--models", "Qwen3-8B/dev")
    assert created.exit_code == 0, created.stderr
    new_key = created.stdout.strip()
    assert new_key.startswith("sk-emd-")
    assert created.stdout == new_key + "\n"  # only the key on stdout: KEY=$(emd keys create)
    assert "shown only this once" in created.stderr
    assert "within 60 s" in created.stderr
    assert stored(secret) == {
        "default": DEFAULT_KEY,
        "ci": {"key": new_key, "models": ["Qwen3-8B/dev"]},
    }

    rows = listed()
    assert rows == {
        "ci": {
            "name": "ci",
            "models": ["Qwen3-8B/dev"],
            "limits": None,
            "key": f"sk-e…{new_key[-3:]}",
        },
        "default": {"name": "default", "models": None, "limits": None, "key": "sk-e…Xy9"},
    }
    assert listed("--show-key")["ci"]["key"] == new_key

    table = keys("list")
    assert table.exit_code == 0
    assert new_key not in table.stdout
    assert DEFAULT_KEY not in table.stdout
    ci_row = next(line for line in table.stdout.splitlines() if "│ ci" in line)
    assert [c.strip() for c in ci_row.strip("│ ").split("│")] == [
        "ci",
        "Qwen3-8B/dev",
        "none",
        f"sk-e…{new_key[-3:]}",
    ]
    assert "all models" in table.stdout

    rotated = keys("rotate", "ci")
    assert rotated.exit_code == 0, rotated.stderr
    newer = rotated.stdout.strip()
    assert newer not in (new_key, "")
    assert stored(secret)["ci"] == {"key": newer, "models": ["Qwen3-8B/dev"]}  # same scope

    revoked = keys("revoke", "ci")
    assert revoked.exit_code == 0, revoked.stderr
    assert revoked.stdout == ""
    assert "stops working within 60 s" in revoked.stderr
    assert stored(secret) == {"default": DEFAULT_KEY}


def test_models_may_repeat_or_be_comma_separated(secret) -> None:
    result = keys("create", "--name", "team", "-m", "bge-m3/dev,Qwen3-8B/dev", "--model", "x/dev")
    assert result.exit_code == 0, result.stderr
    assert stored(secret)["team"]["models"] == ["Qwen3-8B/dev", "bge-m3/dev", "x/dev"]
    # x/dev is not deployed: a warning (a typo would make a key that sees nothing).
    assert "warning: x/dev is not deployed here" in result.stderr
    assert "Qwen3-8B/dev is not deployed" not in result.stderr


def test_errors_are_one_line_and_write_nothing(secret) -> None:
    before = stored(secret)
    for args, message in [
        (("create", "--name", "default"), "a key named 'default' exists already"),
        (("create", "--name", "bad name"), "invalid key name"),
        (("revoke", "nobody"), "no key named 'nobody' (keys: default)"),
        (("rotate", "nobody"), "no key named 'nobody'"),
        (("revoke", "default"), "'default' is the last key"),
    ]:
        result = keys(*args)
        assert result.exit_code == 1, args
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("emd keys: ")
        assert message in line
        assert "Traceback" not in result.output
    assert stored(secret) == before


def test_revoking_the_last_key_with_force(secret) -> None:
    result = keys("revoke", "default", "--force")
    assert result.exit_code == 0, result.stderr
    assert stored(secret) == {}
    assert listed() == {}


def test_concurrent_write_is_a_conflict_and_keeps_the_other_change(secret, monkeypatch) -> None:
    """Another admin writes between our read and our write: we must not overwrite it."""
    real_write = SecretKeys.write

    def write_after_someone_else(self, document, read):
        boto3.client("secretsmanager", region_name=REGION).put_secret_value(
            SecretId=secret,
            SecretString=json.dumps({"default": DEFAULT_KEY, "theirs": "sk-theirs-0000000"}),
        )
        return real_write(self, document, read)

    monkeypatch.setattr(SecretKeys, "write", write_after_someone_else)
    result = keys("create", "--name", "mine")
    assert result.exit_code == 1
    assert "changed by someone else" in result.stderr
    assert "nothing was written" in result.stderr
    assert result.stdout == ""  # no key printed: it was never stored
    assert stored(secret) == {"default": DEFAULT_KEY, "theirs": "sk-theirs-0000000"}


def test_no_api_stack(aws) -> None:
    result = keys("list")
    assert result.exit_code == 1
    assert "no stack EMD-API in us-east-1" in result.stderr
    assert "cdk deploy --all" in result.stderr


def test_no_credentials(monkeypatch, tmp_path) -> None:
    for name in (*AWS_ENV_TO_CLEAR, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = keys("list", "--region", "us-east-1")
    assert result.exit_code == 1
    assert result.stderr.startswith("emd keys: no AWS credentials found")


# --- on the local keys.json --------------------------------------------------------------


def test_local_round_trip(config_dir) -> None:
    path = config_dir / "keys.json"
    listing = keys("list", "--local")
    assert listing.exit_code == 0
    assert "no keys in" in listing.stderr

    created = keys("create", "--local", "--name", "default")
    assert created.exit_code == 0, created.stderr
    default = created.stdout.strip()
    assert "within 2 s" in created.stderr
    scoped = keys("create", "--local", "--name", "ci", "--models", "echo/local").stdout.strip()
    assert json.loads(path.read_text()) == {
        "default": default,
        "ci": {"key": scoped, "models": ["echo/local"]},
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert listed("--local")["ci"] == {
        "name": "ci",
        "models": ["echo/local"],
        "limits": None,
        "key": f"sk-e…{scoped[-3:]}",
    }

    rotated = keys("rotate", "--local", "ci").stdout.strip()
    assert json.loads(path.read_text())["ci"] == {"key": rotated, "models": ["echo/local"]}
    assert keys("revoke", "--local", "ci").exit_code == 0
    assert json.loads(path.read_text()) == {"default": default}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_local_keeps_keys_written_by_emd_serve(config_dir) -> None:
    from emd import config

    default, _ = config.local_key()  # what `emd serve` saves on its first run
    key = keys("create", "--local", "--name", "app").stdout.strip()
    assert json.loads((config_dir / "keys.json").read_text()) == {"default": default, "app": key}


def test_local_invalid_file_is_reported(config_dir) -> None:
    config_dir.mkdir()
    (config_dir / "keys.json").write_text("{nope")
    result = keys("list", "--local")
    assert result.exit_code == 1
    assert "are not valid JSON" in result.stderr


# --- per-key limits --------------------------------------------------------------------


def test_create_with_limits_and_change_them(secret) -> None:
    created = keys("create", "--name", "ci", "-m", "Qwen3-8B/dev", "--rate", "2", "--quota", "1000")
    assert created.exit_code == 0, created.stderr
    key = created.stdout.strip()
    assert "2/s (burst 2), 1000/day" in created.stderr
    assert stored(secret)["ci"] == {
        "key": key,
        "models": ["Qwen3-8B/dev"],
        "limits": {"rate": 2.0, "quota": 1000, "quota_period": "DAY"},
    }
    assert listed()["ci"]["limits"] == {"rate": 2.0, "quota": 1000, "quota_period": "DAY"}
    table = keys("list")
    ci_row = next(line for line in table.stdout.splitlines() if "│ ci" in line)
    assert "2/s (burst 2), 1000/day" in ci_row

    changed = keys(
        "limits", "ci", "--rate", "0.5", "--burst", "3", "--quota-period", "week", "--quota", "7"
    )
    assert changed.exit_code == 0, changed.stderr
    assert "0.5/s (burst 3), 7/week" in changed.stderr
    assert stored(secret)["ci"]["limits"] == {
        "rate": 0.5,
        "burst": 3,
        "quota": 7,
        "quota_period": "WEEK",
    }
    assert stored(secret)["ci"]["key"] == key  # the key and scope are kept

    rotated = keys("rotate", "ci").stdout.strip()
    assert stored(secret)["ci"]["limits"]["burst"] == 3  # rotation keeps the limits
    assert keys("limits", "ci", "--clear").exit_code == 0
    assert stored(secret)["ci"] == {"key": rotated, "models": ["Qwen3-8B/dev"]}

    assert keys("limits", "default", "--quota", "5").exit_code == 0
    assert stored(secret)["default"] == {
        "key": DEFAULT_KEY,
        "limits": {"quota": 5, "quota_period": "DAY"},
    }
    assert keys("limits", "default", "--clear").exit_code == 0
    assert stored(secret)["default"] == DEFAULT_KEY  # back to the plain string


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--name", "x", "--rate", "0"], "--rate must be a number > 0"),
        (["create", "--name", "x", "--burst", "2"], "--burst needs --rate"),
        (["create", "--name", "x", "--quota", "0"], "--quota must be a whole number >= 1"),
        (["create", "--name", "x", "--quota", "3", "--quota-period", "year"], "--quota-period"),
        (["limits", "default"], "or --clear"),
        (["limits", "default", "--clear", "--rate", "1"], "not both"),
        (["limits", "nope", "--rate", "1"], "no key named 'nope'"),
    ],
)
def test_bad_limits_are_refused_and_write_nothing(secret, args, message) -> None:
    before = stored(secret)
    result = keys(*args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert stored(secret) == before


def test_a_secret_the_proxy_could_not_read_is_reported_not_rewritten(secret) -> None:
    client = boto3.client("secretsmanager", region_name=REGION)
    bad = {"default": DEFAULT_KEY, "ci": {"key": "sk-ci", "model": ["Qwen3-8B/dev"]}}
    client.put_secret_value(SecretId=secret, SecretString=json.dumps(bad))
    result = keys("list")
    assert result.exit_code == 1
    assert 'key "ci": unknown field "model" (did you mean "models"?)' in result.stderr
    assert "fix the document there by hand" in result.stderr
    assert keys("create", "--name", "x").exit_code == 1
    assert stored(secret) == bad


def test_local_limits_round_trip(config_dir) -> None:
    path = config_dir / "keys.json"
    key = keys("create", "--local", "--name", "ci", "--quota", "3").stdout.strip()
    assert json.loads(path.read_text())["ci"] == {
        "key": key,
        "limits": {"quota": 3, "quota_period": "DAY"},
    }
    changed = keys("limits", "--local", "ci", "--rate", "1")
    assert changed.exit_code == 0, changed.stderr
    assert "within 2 s" in changed.stderr
    assert json.loads(path.read_text())["ci"] == {"key": key, "limits": {"rate": 1.0}}
