"""Where the CLI keeps its state: `~/.config/emd/` (or $EMD_CONFIG_DIR, or
$XDG_CONFIG_HOME/emd). `keys.json` holds local keys in the same format as the deployed
secret (mode 0600); `serve.json` records a running `emd serve` for `emd status --local`."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The name `--api-key` / EMD_API_KEY goes by next to the keys of keys.json (it wins
# over a saved key of the same name).
OVERRIDE_KEY_NAME = "cli"
# How often `emd serve` re-reads keys.json: a local file read is cheap, so changes made
# with `emd keys --local` apply almost at once (EMD_KEY_CACHE_SECONDS overrides it).
LOCAL_KEY_TTL_SECONDS = 2.0


def config_dir() -> Path:
    if os.environ.get("EMD_CONFIG_DIR"):
        return Path(os.environ["EMD_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "emd"


def generate_key() -> str:
    return f"sk-emd-{secrets.token_urlsafe(32)}"


def write_private(path: Path, data: Any) -> None:
    """Write JSON readable by the owner only (the file may hold keys)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.chmod(path, 0o600)


def keys_path() -> Path:
    return config_dir() / "keys.json"


def local_key() -> tuple[str, bool]:
    """The saved `default` local key, generated and saved on first use.
    Returns (key, whether it was just created)."""
    path = keys_path()
    keys: dict[str, Any] = {}
    if path.exists():
        from emd_proxy.auth import parse_key_document

        keys = json.loads(path.read_text())
        parse_key_document(keys)  # a ValueError naming the key and field, before any use
        default = keys.get("default")
        if isinstance(default, dict):
            default = default.get("key")
        if isinstance(default, str) and default:
            return default, False
    key = generate_key()
    write_private(path, {**keys, "default": key})
    return key, True


def local_keys_loader(override: str | None = None) -> Callable[[], dict[str, Any]]:
    """Loads keys.json afresh on each call (so `emd keys --local` changes reach a
    running `emd serve`), plus the override key; a missing file is no keys."""
    path = keys_path()

    def load() -> dict[str, Any]:
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            document = {}
        if not isinstance(document, dict):
            raise ValueError(f"{path} does not hold a JSON object")
        return {**document, OVERRIDE_KEY_NAME: override} if override else document

    return load


def serve_state_path() -> Path:
    return config_dir() / "serve.json"


def write_serve_state(state: dict[str, Any]) -> None:
    write_private(serve_state_path(), state)


def clear_serve_state(pid: int) -> None:
    path = serve_state_path()
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass
