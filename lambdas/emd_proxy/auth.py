"""API keys: where they come from, and checking a presented key in constant time.

Key documents (Secrets Manager secret value, or the local key file) map a key name to
either the key string (full access, no limits of its own) or an object:

    {"key": "sk-...",                    required, non-empty string
     "models": ["Qwen3-8B/dev"],         optional list of model ids; absent: every model
     "limits": {"rate": 5.0,             optional requests per second (> 0)
                "burst": 10,             optional bucket size (int >= 1; needs rate)
                "quota": 10000,          optional requests per quota_period (int >= 1)
                "quota_period": "DAY"}}  DAY | WEEK | MONTH (default DAY; needs quota)

`parse_key_document` is the one reader of this format (the proxy, `emd keys`,
`emd serve` and the AWS authorizer all call it). It fails closed: an unknown field, a
`models` that is not a list, or a value of the wrong type is an error naming the key
and the field, never a silently wider key. Hand-written rather than pydantic so the
messages say exactly what is wrong and nothing is built at cold start; error messages
never echo a value (it could be a key).
"""

from __future__ import annotations

import hmac
import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .errors import AuthenticationError, ProxyError
from .log import logger

QuotaPeriod = Literal["DAY", "WEEK", "MONTH"]
QUOTA_PERIODS: tuple[QuotaPeriod, ...] = ("DAY", "WEEK", "MONTH")
KEY_FIELDS = ("key", "models", "limits")
LIMIT_FIELDS = ("rate", "burst", "quota", "quota_period")
_ABSENT: Any = object()


@dataclass(frozen=True)
class KeyLimits:
    """A key's own limits, as written in its document (None: not limited that way).
    Locally `emd serve` enforces them in process (limits.py); deployed, API Gateway
    usage plans do."""

    rate: float | None = None  # requests per second, steady state
    burst: int | None = None  # token bucket size; None: `effective_burst`
    quota: int | None = None  # requests per quota_period
    quota_period: QuotaPeriod = "DAY"

    @property
    def effective_burst(self) -> int | None:
        """The bucket size in force: `burst`, else max(1, ceil(rate)); None without a rate."""
        if self.rate is None:
            return None
        return self.burst if self.burst is not None else max(1, math.ceil(self.rate))

    def to_document(self) -> dict[str, Any]:
        """The `limits` object as written in a key document (only the fields set)."""
        out: dict[str, Any] = {}
        if self.rate is not None:
            out["rate"] = self.rate
        if self.burst is not None:
            out["burst"] = self.burst
        if self.quota is not None:
            out["quota"] = self.quota
            out["quota_period"] = self.quota_period
        return out


@dataclass(frozen=True)
class Principal:
    """Who called: the key's name (safe to log), the models it may see, its limits."""

    name: str
    models: frozenset[str] | None  # None: every model
    limits: KeyLimits | None = None  # None: no limits of its own


@dataclass(frozen=True)
class _Key:
    secret: bytes
    principal: Principal


class KeyDocumentError(ValueError):
    """A key document the proxy cannot read; the message names the key and field."""


class KeysUnavailableError(ProxyError):
    """No key document we may trust: refuse rather than guess. Details are logged only
    (they may name the secret)."""

    status = 503
    type = "service_unavailable"
    code = "api_keys_unavailable"


def parse_key_document(document: Any) -> list[_Key]:
    """Every key of a document, or a KeyDocumentError (a ValueError) naming the first
    problem. An empty document is valid: no key is accepted."""
    if not isinstance(document, Mapping):
        raise KeyDocumentError(
            f"the key document must be a JSON object of key names, not {_kind(document)}"
        )
    keys = []
    for name, value in document.items():
        if not isinstance(name, str) or not name:
            raise KeyDocumentError("a key name must be a non-empty string")
        keys.append(_Key(_secret(name, value).encode(), _principal(name, value)))
    return keys


def parse_key_limits(name: str, value: Any) -> KeyLimits | None:
    """The `limits` object of key `name`; an empty object means no limits."""
    where = f"key {json.dumps(name)}"
    if not isinstance(value, Mapping):
        raise KeyDocumentError(f'{where}: "limits" must be an object, not {_kind(value)}')
    _no_unknown_fields(where, value, LIMIT_FIELDS, prefix="limits.")
    rate = value.get("rate", _ABSENT)
    if rate is _ABSENT:
        rate = None
    elif not (_is_number(rate) and math.isfinite(rate) and rate > 0):
        raise KeyDocumentError(f'{where}: "limits.rate" must be a number > 0 (requests per second)')
    burst = _positive_int(where, value, "burst")
    quota = _positive_int(where, value, "quota")
    period = value.get("quota_period", "DAY")
    if period not in QUOTA_PERIODS:
        raise KeyDocumentError(f'{where}: "limits.quota_period" must be "DAY", "WEEK" or "MONTH"')
    if burst is not None and rate is None:
        raise KeyDocumentError(f'{where}: "limits.burst" needs "limits.rate"')
    if "quota_period" in value and quota is None:
        raise KeyDocumentError(f'{where}: "limits.quota_period" needs "limits.quota"')
    if rate is None and quota is None:
        return None
    return KeyLimits(
        rate=float(rate) if rate is not None else None,
        burst=burst,
        quota=quota,
        quota_period=period,
    )


def _secret(name: str, value: Any) -> str:
    where = f"key {json.dumps(name)}"
    if isinstance(value, str):
        secret = value
    elif isinstance(value, Mapping):
        _no_unknown_fields(where, value, KEY_FIELDS)
        if "key" not in value:
            raise KeyDocumentError(f'{where}: missing field "key" (the key string)')
        secret = value["key"]
        if not isinstance(secret, str):
            raise KeyDocumentError(f'{where}: "key" must be a string, not {_kind(secret)}')
    else:
        raise KeyDocumentError(
            f'{where}: expected the key string or an object with "key", not {_kind(value)}'
        )
    if not secret:
        raise KeyDocumentError(f"{where}: the key string is empty")
    return secret


def _principal(name: str, value: Any) -> Principal:
    if isinstance(value, str):
        return Principal(name, None)
    where = f"key {json.dumps(name)}"
    models: frozenset[str] | None = None
    if "models" in value:  # present: a list, even null is refused (absent means all)
        raw = value["models"]
        if not isinstance(raw, list):
            raise KeyDocumentError(
                f'{where}: "models" must be a list of model ids (e.g. ["Qwen3-8B/dev"]), '
                f"not {_kind(raw)}; leave it out for every model"
            )
        for i, model in enumerate(raw):
            if not isinstance(model, str) or not model:
                raise KeyDocumentError(f'{where}: "models.{i}" must be a non-empty model id')
        models = frozenset(raw)
    limits = parse_key_limits(name, value["limits"]) if "limits" in value else None
    return Principal(name, models, limits)


def _no_unknown_fields(
    where: str, value: Mapping[str, Any], known: tuple[str, ...], prefix: str = ""
) -> None:
    for field in value:
        if field not in known:
            hint = _did_you_mean(str(field), known)
            raise KeyDocumentError(
                f"{where}: unknown field {json.dumps(prefix + str(field))}{hint}"
            )


def _did_you_mean(field: str, known: tuple[str, ...]) -> str:
    lowered = field.lower()
    match = next((k for k in known if k == lowered), None)
    if match is None:
        import difflib  # only on the error path: keeps it off the cold start

        close = difflib.get_close_matches(lowered, known, n=1, cutoff=0.6)
        match = close[0] if close else None
    if match is not None:
        return f" (did you mean {json.dumps(match)}?)"
    return f" (known fields: {', '.join(known)})"


def _positive_int(where: str, value: Mapping[str, Any], field: str) -> int | None:
    if field not in value:
        return None
    raw = value[field]
    if type(raw) is not int or raw < 1:  # strict: not a bool, not 5.0, not "5"
        raise KeyDocumentError(f'{where}: "limits.{field}" must be a whole number >= 1')
    return raw


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)  # strict: a bool or a string is not a number


def _kind(value: Any) -> str:
    """The JSON type of a value, never the value itself (it could be a key)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


class KeyStore:
    """Checks presented keys against a key document fetched by `load` and cached for
    `ttl` seconds (so a rotated secret takes effect without a redeploy).

    It never falls back to allowing: when a reload fails (Secrets Manager unreachable,
    or a document we cannot parse) the last good keys are served for at most
    `stale_max` seconds after they were loaded, then every request gets 503 until a
    good document is read. With no good keys at all, every request gets 503."""

    def __init__(
        self,
        load: Callable[[], Mapping[str, Any]],
        ttl: float = 60.0,
        stale_max: float = 300.0,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._stale_max = stale_max
        self._keys: list[_Key] = []
        self._loaded_at = 0.0  # when self._keys were read (monotonic)
        self._expires = 0.0
        self._lock = threading.Lock()

    @classmethod
    def static(cls, document: Mapping[str, Any]) -> KeyStore:
        store = cls(lambda: document, ttl=float("inf"))
        store.keys()  # fail at start, not on the first request
        return store

    @classmethod
    def from_file(cls, path: str | Path, ttl: float = 60.0, stale_max: float = 300.0) -> KeyStore:
        return cls(lambda: json.loads(Path(path).read_text()), ttl, stale_max)

    @classmethod
    def from_secret(cls, secret_id: str, ttl: float = 60.0, stale_max: float = 300.0) -> KeyStore:
        client: Any = None

        def load() -> Mapping[str, Any]:
            nonlocal client
            if client is None:  # once: creating a client loads the service model
                import botocore.session

                client = botocore.session.get_session().create_client("secretsmanager")
            value = client.get_secret_value(SecretId=secret_id)
            return json.loads(value["SecretString"])

        return cls(load, ttl, stale_max)

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
                keys = parse_key_document(self._load())
            except Exception as exc:  # noqa: BLE001 - any failure: last good keys or deny
                self._failed(now, exc)
            else:
                self._keys, self._loaded_at, self._expires = keys, now, now + self._ttl

    def _failed(self, now: float, exc: Exception) -> None:
        # The reason is logged (a parse error names the key and field, never a value);
        # a read error's message may name the secret, so only its type is logged.
        reason = str(exc) if isinstance(exc, KeyDocumentError) else None
        age = now - self._loaded_at
        if self._keys and age < self._stale_max:
            logger.error(
                "loading API keys failed; serving the last good keys",
                extra={"error": type(exc).__name__, "reason": reason, "keys_age_s": round(age)},
            )
            # Try again soon, and never serve them past the cap.
            self._expires = min(now + min(self._ttl, 5.0), self._loaded_at + self._stale_max)
            return
        logger.error(
            "loading API keys failed; refusing every request",
            extra={"error": type(exc).__name__, "reason": reason},
        )
        self._keys = []  # past the cap: never allow on stale keys again
        raise KeysUnavailableError("API keys are unavailable.", retry_after=5) from exc

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
