from __future__ import annotations

import pytest

from emd_proxy.families import API_FAMILIES
from emd_proxy.settings import Settings


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.key_cache_seconds == 60.0
    assert settings.api_key_secret_id is None
    assert settings.api_keys_file is None
    assert settings.families == API_FAMILIES


def test_numbers_and_strings() -> None:
    settings = Settings.from_env(
        {
            "EMD_API_KEY_SECRET_ID": "arn:aws:secretsmanager:us-east-1:1:secret:k",
            "EMD_API_KEYS_FILE": "/tmp/keys.json",
            "EMD_KEY_CACHE_SECONDS": "5",
            "EMD_UPSTREAM_TIMEOUT_SECONDS": "12.5",
            "EMD_UPSTREAM_MAX_ATTEMPTS": "1",
            "EMD_MAX_CONCURRENCY": "8",
            "EMD_MAX_BODY_BYTES": "1024",
            "EMD_KEEPALIVE_SECONDS": "0.5",
        }
    )
    assert settings.api_key_secret_id == "arn:aws:secretsmanager:us-east-1:1:secret:k"
    assert settings.api_keys_file == "/tmp/keys.json"
    assert settings.key_cache_seconds == 5.0
    assert settings.upstream_timeout_seconds == 12.5
    assert settings.upstream_max_attempts == 1
    assert isinstance(settings.upstream_max_attempts, int)
    assert settings.max_concurrency == 8
    assert settings.max_body_bytes == 1024
    assert settings.keepalive_seconds == 0.5


def test_empty_values_mean_defaults() -> None:
    env = {"EMD_KEY_CACHE_SECONDS": "", "EMD_API_KEY_SECRET_ID": "", "EMD_FAMILIES": ""}
    assert Settings.from_env(env) == Settings()


def test_families_are_parsed() -> None:
    settings = Settings.from_env({"EMD_FAMILIES": " chat, embeddings ,,"})
    assert settings.families == ("chat", "embeddings")


def test_unknown_family_is_an_error() -> None:
    with pytest.raises(ValueError, match="images"):
        Settings.from_env({"EMD_FAMILIES": "chat,images"})


def test_a_bad_number_is_an_error() -> None:
    with pytest.raises(ValueError):
        Settings.from_env({"EMD_KEY_CACHE_SECONDS": "soon"})


def test_reads_os_environ_by_default(monkeypatch) -> None:
    monkeypatch.setenv("EMD_FAMILIES", "audio")
    assert Settings.from_env().families == ("audio",)


def test_models_only_lambda_mounts_no_family() -> None:
    assert Settings.from_env({"EMD_FAMILIES": "models"}).families == ()
    assert Settings.from_env({"EMD_FAMILIES": "models,chat"}).families == ("chat",)
