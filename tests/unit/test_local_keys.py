"""`emd serve`'s keys: keys.json re-read with a TTL, merged with the --api-key override."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from emd import config, serve
from emd_proxy import auth
from emd_proxy.errors import AuthenticationError


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    directory = tmp_path / "config"
    monkeypatch.setenv("EMD_CONFIG_DIR", str(directory))
    monkeypatch.delenv("EMD_KEY_CACHE_SECONDS", raising=False)
    directory.mkdir()
    return directory


def write_keys(config_dir, document) -> None:
    (config_dir / "keys.json").write_text(json.dumps(document))


def test_loader_reads_the_file_each_time(config_dir) -> None:
    load = config.local_keys_loader()
    assert load() == {}  # no file yet
    write_keys(config_dir, {"default": "sk-1"})
    assert load() == {"default": "sk-1"}
    write_keys(config_dir, {"default": "sk-2"})
    assert load() == {"default": "sk-2"}


def test_loader_adds_the_override_as_cli_and_it_wins(config_dir) -> None:
    write_keys(config_dir, {"default": "sk-1", "cli": "sk-old"})
    assert config.local_keys_loader("sk-env")() == {"default": "sk-1", "cli": "sk-env"}


def test_loader_refuses_a_non_object(config_dir) -> None:
    write_keys(config_dir, ["sk-1"])
    with pytest.raises(ValueError, match="JSON object"):
        config.local_keys_loader()()


def test_serve_keys_follow_the_file_after_the_ttl(config_dir, monkeypatch) -> None:
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(auth, "time", SimpleNamespace(monotonic=lambda: clock.now))
    write_keys(config_dir, {"default": "sk-1"})
    store = serve._local_keys("sk-env")
    assert store.authenticate("Bearer sk-1").name == "default"
    assert store.authenticate("Bearer sk-env").name == "cli"

    write_keys(config_dir, {"default": "sk-1", "ci": {"key": "sk-ci", "models": ["echo/local"]}})
    with pytest.raises(AuthenticationError):
        store.authenticate("Bearer sk-ci")  # cached
    clock.now += config.LOCAL_KEY_TTL_SECONDS
    principal = store.authenticate("Bearer sk-ci")
    assert principal.models == frozenset({"echo/local"})

    write_keys(config_dir, {"ci": "sk-ci"})  # default revoked
    clock.now += config.LOCAL_KEY_TTL_SECONDS
    with pytest.raises(AuthenticationError):
        store.authenticate("Bearer sk-1")
    assert store.authenticate("Bearer sk-env").name == "cli"  # the override stays


@pytest.mark.parametrize("cache_seconds", [None, "30"])
def test_serve_keys_ttl_follows_emd_key_cache_seconds(
    config_dir, monkeypatch, cache_seconds: str | None
) -> None:
    ttl = config.LOCAL_KEY_TTL_SECONDS if cache_seconds is None else float(cache_seconds)
    if cache_seconds is not None:
        monkeypatch.setenv("EMD_KEY_CACHE_SECONDS", cache_seconds)
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(auth, "time", SimpleNamespace(monotonic=lambda: clock.now))
    write_keys(config_dir, {"default": "sk-1"})
    store = serve._local_keys(None)
    assert store.authenticate("Bearer sk-1").name == "default"
    write_keys(config_dir, {"default": "sk-2"})
    clock.now += ttl - 0.1
    assert store.authenticate("Bearer sk-1").name == "default"  # still the cached file
    clock.now += 0.1
    assert store.authenticate("Bearer sk-2").name == "default"


def test_serve_keys_fail_at_start_on_a_broken_file(config_dir) -> None:
    write_keys(config_dir, {"default": 5})
    with pytest.raises(ValueError, match='key "default"'):
        serve._local_keys(None)


def test_status_local_uses_the_override_then_default_then_an_unscoped_key(
    config_dir, monkeypatch
) -> None:
    from emd.status_local import _local_key

    monkeypatch.delenv("EMD_API_KEY", raising=False)
    assert _local_key() is None  # no file
    write_keys(config_dir, {"b": "sk-b", "a": {"key": "sk-a", "models": ["x/y"]}})
    assert _local_key() == "sk-b"  # the scoped one might not see every model
    write_keys(config_dir, {"b": "sk-b", "default": {"key": "sk-d"}})
    assert _local_key() == "sk-d"
    monkeypatch.setenv("EMD_API_KEY", "sk-env")
    assert _local_key() == "sk-env"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"default": "sk-1", "ci": {"key": "sk-2", "model": ["a/b"]}}, 'unknown field "model"'),
        ({"default": "sk-1", "ci": {"key": "sk-2", "models": "a/b"}}, '"models" must be a list'),
        (["sk-1"], "JSON object"),
    ],
)
def test_serve_refuses_a_key_file_it_cannot_read_exactly(config_dir, document, message) -> None:
    """`emd serve` starts only on a key file the proxy reads exactly as written (a key
    scoped with a misspelt field would otherwise see every model)."""
    write_keys(config_dir, document)
    with pytest.raises(ValueError, match=message):
        config.local_key()
    with pytest.raises(ValueError, match=message):
        serve._local_keys(None)


def test_a_key_file_broken_while_serving_denies_after_the_stale_cap(
    config_dir, monkeypatch
) -> None:
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(auth, "time", SimpleNamespace(monotonic=lambda: clock.now))
    monkeypatch.setenv("EMD_KEY_STALE_MAX_SECONDS", "30")
    write_keys(config_dir, {"default": "sk-1"})
    store = serve._local_keys(None)
    assert store.authenticate("Bearer sk-1").name == "default"
    write_keys(config_dir, {"default": {"key": "sk-1", "model": ["a/b"]}})
    clock.now += 10
    assert store.authenticate("Bearer sk-1").name == "default"  # last good keys
    clock.now += 25
    with pytest.raises(auth.KeysUnavailableError):
        store.authenticate("Bearer sk-1")
