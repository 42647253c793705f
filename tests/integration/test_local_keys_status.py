"""A running `emd serve` (a real process) picks up `emd keys --local` changes without a
restart, and `emd status --local` reports it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.test_serve_cli import start, wait_for_banner

# The local key TTL, shortened so the waits below stay well under a second.
KEY_CACHE_SECONDS = "0.2"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path / "emd-config"


def cli_env(config_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "EMD_CONFIG_DIR": str(config_dir), "NO_PROXY": "127.0.0.1"}
    env.pop("EMD_API_KEY", None)
    return {**env, **extra}


def emd(config_dir: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emd", *args],
        capture_output=True,
        text=True,
        env=cli_env(config_dir, **extra),
        timeout=60,
        check=False,
    )


@pytest.fixture
def served(config_dir: Path) -> Iterator[tuple[subprocess.Popen, str, str]]:
    proc = start(
        config_dir,
        "--port",
        "0",
        env={"EMD_KEY_CACHE_SECONDS": KEY_CACHE_SECONDS, "EMD_API_KEY": ""},
    )
    try:
        url, key = wait_for_banner(proc)
        yield proc, url, key
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


def status_code(url: str, key: str) -> int:
    return httpx.get(
        f"{url}/models", headers={"Authorization": f"Bearer {key}"}, trust_env=False
    ).status_code


def wait_for_status(url: str, key: str, expected: int, timeout: float = 10.0) -> None:
    """Polls (no fixed sleep) until the server answers `expected` for this key."""
    deadline = time.monotonic() + timeout
    while (got := status_code(url, key)) != expected:
        assert time.monotonic() < deadline, f"still {got}, expected {expected}"
        time.sleep(0.05)


def test_serve_picks_up_local_key_changes_without_restart(served, config_dir) -> None:
    proc, url, default = served
    created = emd(config_dir, "keys", "create", "--local", "--name", "app", "-m", "echo/local")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    wait_for_status(url, key, 200)
    visible = httpx.get(
        f"{url}/models", headers={"Authorization": f"Bearer {key}"}, trust_env=False
    ).json()
    assert [m["id"] for m in visible["data"]] == ["echo/local"]

    rotated = emd(config_dir, "keys", "rotate", "--local", "app").stdout.strip()
    wait_for_status(url, rotated, 200)
    assert status_code(url, key) == 401

    assert emd(config_dir, "keys", "revoke", "--local", "app").returncode == 0
    wait_for_status(url, rotated, 401)
    assert status_code(url, default) == 200
    assert proc.poll() is None  # the same process all along


def test_api_key_override_is_merged_with_the_saved_keys(config_dir) -> None:
    """The generated key is saved; a later run with EMD_API_KEY shows and accepts that
    key, still accepts the saved one, and writes nothing."""
    first = start(config_dir, "--port", "0", env={"EMD_API_KEY": ""})
    try:
        _, saved = wait_for_banner(first)
    finally:
        first.terminate()
        first.wait(timeout=10)
    proc = start(config_dir, "--port", "0", env={"EMD_API_KEY": "sk-from-env"})
    try:
        url, shown = wait_for_banner(proc)
        assert shown == "sk-from-env"
        assert status_code(url, "sk-from-env") == 200
        assert status_code(url, saved) == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert json.loads((config_dir / "keys.json").read_text()) == {"default": saved}


def test_status_local_reports_the_running_server(served, config_dir) -> None:
    proc, url, key = served
    done = emd(config_dir, "status", "--local", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    [model] = document.pop("models")
    assert document == {"base_url": url, "pid": proc.pid, "api_key": f"{key[:4]}…{key[-3:]}"}
    assert model["id"] == "echo/local"
    assert "chat" in model["families"]
    assert model["engine"] == "vllm"
    shown = json.loads(emd(config_dir, "status", "--local", "--json", "--show-key").stdout)
    assert shown["api_key"] == key

    table = emd(config_dir, "status", "--local")
    assert table.returncode == 0
    assert f"Base URL: {url}" in table.stdout
    assert f"pid {proc.pid}" in table.stdout
    assert key not in table.stdout
    assert "echo/local" in table.stdout


def test_status_local_with_a_rejected_key(served, config_dir) -> None:
    done = emd(config_dir, "status", "--local", EMD_API_KEY="sk-wrong")
    assert done.returncode == 1
    assert "rejected the local key" in done.stderr


def test_status_local_when_nothing_runs(config_dir, tmp_path) -> None:
    done = emd(config_dir, "status", "--local")
    assert done.returncode == 1
    assert done.stderr.startswith("emd status: no local gateway is running")
    assert "emd serve" in done.stderr

    # A stale record: its process is gone.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "serve.json").write_text(
        json.dumps({"base_url": "http://127.0.0.1:9/v1", "pid": gone.pid})
    )
    stale = emd(config_dir, "status", "--local")
    assert stale.returncode == 1
    assert f"emd serve (pid {gone.pid}) is not running any more" in stale.stderr
    assert len(stale.stderr.strip().splitlines()) == 1


def test_status_local_when_the_process_lives_but_does_not_answer(config_dir) -> None:
    config_dir.mkdir(parents=True)
    # Our own pid is alive; nothing listens on port 9 (discard) on loopback.
    (config_dir / "serve.json").write_text(
        json.dumps({"base_url": "http://127.0.0.1:9/v1", "pid": os.getpid()})
    )
    done = emd(config_dir, "status", "--local")
    assert done.returncode == 1
    assert "does not answer at http://127.0.0.1:9/health" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_enforces_limits_set_with_emd_keys(served, config_dir) -> None:
    """`emd serve` enforces a key's own limits (EMD_ENFORCE_KEY_LIMITS is on there),
    and picks up a change of them from keys.json without a restart."""
    proc, url, default = served
    created = emd(config_dir, "keys", "create", "--local", "--name", "ci", "--quota", "2")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    wait_for_status(url, key, 200)  # the first request counted
    assert status_code(url, key) == 200
    refused = httpx.get(
        f"{url}/models", headers={"Authorization": f"Bearer {key}"}, trust_env=False
    )
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    assert status_code(url, default) == 200  # other keys unaffected

    cleared = emd(config_dir, "keys", "limits", "--local", "ci", "--clear")
    assert cleared.returncode == 0, cleared.stderr
    wait_for_status(url, key, 200)
    assert proc.poll() is None
