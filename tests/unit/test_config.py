from __future__ import annotations

import json
import stat

import pytest

from emd import config


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    directory = tmp_path / "emd-config"
    monkeypatch.setenv("EMD_CONFIG_DIR", str(directory))
    return directory


def test_config_dir_follows_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("EMD_CONFIG_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config.config_dir() == tmp_path / "emd"
    monkeypatch.setenv("EMD_CONFIG_DIR", str(tmp_path / "x"))
    assert config.config_dir() == tmp_path / "x"


def test_local_key_is_created_once_with_mode_0600(config_dir) -> None:
    key, created = config.local_key()
    path = config_dir / "keys.json"
    assert created is True
    assert key.startswith("sk-emd-")
    assert len(key) > 30
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"default": key}

    again, created_again = config.local_key()
    assert again == key
    assert created_again is False


def test_local_key_reads_a_scoped_default(config_dir) -> None:
    config_dir.mkdir()
    (config_dir / "keys.json").write_text(json.dumps({"default": {"key": "sk-x", "models": []}}))
    assert config.local_key() == ("sk-x", False)


def test_local_key_keeps_other_keys(config_dir) -> None:
    config_dir.mkdir()
    (config_dir / "keys.json").write_text(json.dumps({"ci": "sk-ci"}))
    key, created = config.local_key()
    assert created is True
    assert json.loads((config_dir / "keys.json").read_text()) == {"ci": "sk-ci", "default": key}


def test_write_private_tightens_an_existing_file(tmp_path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{}")
    path.chmod(0o644)
    config.write_private(path, {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"a": 1}


def test_generated_keys_differ() -> None:
    assert config.generate_key() != config.generate_key()


def test_clear_serve_state_only_for_its_own_pid(config_dir) -> None:
    config.write_serve_state({"pid": 123, "base_url": "http://127.0.0.1:8000/v1"})
    config.clear_serve_state(456)
    assert config.serve_state_path().exists()
    config.clear_serve_state(123)
    assert not config.serve_state_path().exists()
    config.clear_serve_state(123)  # already gone: no error
