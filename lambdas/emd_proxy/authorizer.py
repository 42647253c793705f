"""API Gateway's Lambda authorizer (REQUEST type): checks the presented EMD key and
names the API Gateway API key whose usage plan limits it.

A plain handler, not the FastAPI app under the Lambda Web Adapter: API Gateway calls it
on every cache miss, so its cold start and its warm path are what an uncached request
pays before the family Lambda runs. It reads the key document through the proxy's own
`KeyStore` (cached in process for EMD_KEY_CACHE_SECONDS, constant-time compare).

Its answer allows every method of the stage (`<api>/<stage>/*`), because API Gateway
caches one answer per identity source and reuses it on any route; the app still checks
model scopes. `usageIdentifierKey` is the key's API Gateway API key value, derived by
`usage_key` (never the EMD key itself, so API Gateway's GetApiKeys reveals nothing a
client could use). An unknown or missing key raises `Unauthorized` (API Gateway's 401,
rendered in OpenAI's shape by the UNAUTHORIZED Gateway Response); a key document that
cannot be read fails the call (AUTHORIZER_FAILURE, a 500): refused either way.

Environment: EMD_API_KEY_SECRET_ID, EMD_PREFIX (the deployment prefix, part of each
derived value), EMD_KEY_CACHE_SECONDS (default 60)."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping
from typing import Any

from .auth import KeyStore, _bearer
from .errors import AuthenticationError
from .log import logger

USAGE_KEY_PREFIX = "emd-"


def usage_key(prefix: str, key: str) -> str:
    """The API Gateway API key value for EMD key `key` of deployment `prefix`:
    `emd-` + 64 hex digits (API key values are 20 to 128 characters). Keys are long
    random strings, so their SHA-256 cannot be turned back into a usable key."""
    digest = hashlib.sha256(f"emd-usage-key\0{prefix}\0{key}".encode()).hexdigest()
    return USAGE_KEY_PREFIX + digest


def presented_key(headers: Mapping[str, str] | None) -> str | None:
    """`Authorization: Bearer <key>`, else `x-api-key` (Anthropic's clients), as
    `KeyStore.authenticate` reads them. Header names are matched case-insensitively:
    REQUEST authorizers get them as the client sent them."""
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    return _bearer(lowered.get("authorization")) or (lowered.get("x-api-key") or "").strip() or None


def stage_resource(method_arn: str) -> str:
    """`arn:...:<api>/<stage>/GET/v1/models` -> `arn:...:<api>/<stage>/*`."""
    api, stage, *_ = method_arn.split("/")
    return f"{api}/{stage}/*"


class Authorizer:
    def __init__(self, keys: KeyStore, prefix: str) -> None:
        self._keys = keys
        self._prefix = prefix

    def __call__(self, event: Mapping[str, Any]) -> dict[str, Any]:
        presented = presented_key(event.get("headers"))
        if presented is None:
            raise Exception("Unauthorized")
        try:
            # Already taken out of its header: authenticate compares it as given.
            principal = self._keys.authenticate(None, presented)
        except AuthenticationError:
            # API Gateway answers exactly this message with its 401.
            raise Exception("Unauthorized") from None
        return {
            "principalId": principal.name,
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Action": "execute-api:Invoke",
                        "Effect": "Allow",
                        "Resource": stage_resource(event["methodArn"]),
                    }
                ],
            },
            "usageIdentifierKey": usage_key(self._prefix, presented),
            "context": {"keyName": principal.name},
        }


@functools.cache
def _get() -> Authorizer:
    """One per process (Lambda reuses it across invokes), built at the first call."""
    ttl = float(os.environ.get("EMD_KEY_CACHE_SECONDS") or 60.0)
    keys = KeyStore.from_secret(os.environ["EMD_API_KEY_SECRET_ID"], ttl)
    return Authorizer(keys, os.environ["EMD_PREFIX"])


def handler(event: dict[str, Any], _context: object) -> dict[str, Any]:
    try:
        return _get()(event)
    except Exception as exc:
        if str(exc) != "Unauthorized":
            # Key document unreadable (KeysUnavailableError) or a bug: logged by type
            # only, never with headers (they carry keys).
            logger.error("authorizer failed", extra={"error": type(exc).__name__})
        raise
