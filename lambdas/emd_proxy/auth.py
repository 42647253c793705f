"""API keys: where they come from, and checking a presented key in constant time.

Key documents (Secrets Manager secret value, or the local key file) map a key name to
either the key string or `{"key": "...", "models": ["Qwen3-8B/dev"]}` for a key that
may see only some models.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import AuthenticationError, InternalError
from .log import logger


@dataclass(frozen=True)
class Principal:
    """Who called: the key's name (safe to log) and the models it may see."""

    name: str
    models: frozenset[str] | None  # None: every model


@dataclass(frozen=True)
class _Key:
    secret: bytes
    principal: Principal


def parse_key_document(document: Mapping[str, Any]) -> list[_Key]:
    keys = []
    for name, value in document.items():
        if isinstance(value, str):
            secret, models = value, None
        elif isinstance(value, Mapping) and isinstance(value.get("key"), str):
            secret = value["key"]
            raw_models = value.get("models")
            models = frozenset(str(m) for m in raw_models) if raw_models is not None else None
        else:
            raise ValueError(f"key {name!r}: expected a string or an object with 'key'")
        if not secret:
            raise ValueError(f"key {name!r} is empty")
        keys.append(_Key(secret.encode(), Principal(str(name), models)))
    return keys


class KeyStore:
    """Checks presented keys against a key document fetched by `load` and cached for
    `ttl` seconds (so a rotated secret takes effect without a redeploy)."""

    def __init__(self, load: Callable[[], Mapping[str, Any]], ttl: float = 60.0) -> None:
        self._load = load
        self._ttl = ttl
        self._keys: list[_Key] = []
        self._expires = 0.0
        self._lock = threading.Lock()

    @classmethod
    def static(cls, document: Mapping[str, Any]) -> KeyStore:
        store = cls(lambda: document, ttl=float("inf"))
        store.keys()  # fail at start, not on the first request
        return store

    @classmethod
    def from_file(cls, path: str | Path, ttl: float = 60.0) -> KeyStore:
        return cls(lambda: json.loads(Path(path).read_text()), ttl)

    @classmethod
    def from_secret(cls, secret_id: str, ttl: float = 60.0) -> KeyStore:
        client: Any = None

        def load() -> Mapping[str, Any]:
            nonlocal client
            if client is None:  # once: creating a client loads the service model
                import botocore.session

                client = botocore.session.get_session().create_client("secretsmanager")
            value = client.get_secret_value(SecretId=secret_id)
            return json.loads(value["SecretString"])

        return cls(load, ttl)

    @property
    def stale(self) -> bool:
        """True when the next check would fetch the key document (a blocking call:
        async callers refresh in a worker thread first)."""
        return time.monotonic() >= self._expires

    def refresh(self) -> None:
        with self._lock:
            now = time.monotonic()
            if now < self._expires:
                return
            try:
                self._keys = parse_key_document(self._load())
            except Exception as exc:
                logger.error("loading API keys failed", extra={"error": type(exc).__name__})
                if not self._keys:
                    # Never say why to the client: the reason may name the secret.
                    raise InternalError("API keys are unavailable.") from exc
                # Keep serving with the last good keys; try again soon.
                self._expires = now + min(self._ttl, 5.0)
            else:
                self._expires = now + self._ttl

    def keys(self) -> list[_Key]:
        if self.stale:
            self.refresh()
        return self._keys

    def authenticate(self, authorization: str | None, api_key: str | None = None) -> Principal:
        """The key from `Authorization: Bearer <key>`, else `api_key` (the x-api-key
        header Anthropic's clients send)."""
        presented = _bearer(authorization) or (api_key or "").strip() or None
        if presented is None:
            raise AuthenticationError("Missing API key. Send it as 'Authorization: Bearer <key>'.")
        found: Principal | None = None
        candidate = presented.encode()
        # Compare against every key, so the time taken does not tell which one matched.
        for key in self.keys():
            if hmac.compare_digest(candidate, key.secret) and found is None:
                found = key.principal
        if found is None:
            raise AuthenticationError("Incorrect API key provided.")
        return found


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return None
    return value
