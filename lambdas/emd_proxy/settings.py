"""The proxy's configuration, read once from the environment into a typed object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .families import API_FAMILIES, BY_NAME, MODELS


@dataclass(frozen=True)
class Settings:
    api_key_secret_id: str | None = None
    api_keys_file: str | None = None
    key_cache_seconds: float = 60.0
    # While reloads of the key document fail (Secrets Manager unreachable, or a
    # document we cannot parse), the last good keys are served for at most this long
    # after they were read; then every request gets 503 until a good one is read.
    key_stale_max_seconds: float = 300.0
    # Per-key limits (`limits` in the key document) enforced in this process.
    # `emd serve` turns it on; deployed it stays off, as API Gateway usage plans
    # enforce the same limits before the Lambda runs (and a Lambda's counts would be
    # per instance anyway).
    enforce_key_limits: bool = False
    # Read timeout of the SageMaker call; above the engine's own limits (InvokeEndpoint
    # answers within 60 s, streams may idle for minutes).
    upstream_timeout_seconds: float = 900.0
    connect_timeout_seconds: float = 5.0
    # Retries of a call that has not started to answer (throttling, 5xx); never after
    # the first byte of a stream went out.
    upstream_max_attempts: int = 2
    max_concurrency: int = 256
    max_body_bytes: int = 6 * 1024 * 1024
    # Audio uploads: API Gateway base64-encodes binary bodies into Lambda's 6 MB
    # request payload, which leaves room for about 4.5 MB of audio.
    max_audio_bytes: int = 4 * 1024 * 1024
    # A `: keep-alive` comment goes out after this much upstream silence in a stream;
    # well inside API Gateway's 5 minute idle timeout.
    keepalive_seconds: float = 15.0
    # Scale to zero (wake.py): how long a non-stream request (and a raw stream, whose
    # framing is the container's) waits for a model waking from zero copies before it
    # gets 503 model_scaling_from_zero with Retry-After (0: at once); how long an SSE
    # stream holds with keep-alives (never past the Lambda's own deadline); and how
    # often the inference component's status is read meanwhile.
    wake_wait_seconds: float = 60.0
    wake_stream_wait_seconds: float = 600.0
    wake_poll_seconds: float = 5.0
    # The families (families.py) whose routes this process mounts (/v1/models always).
    families: tuple[str, ...] = field(default=API_FAMILIES)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        def number(name: str, default: float) -> float:
            raw = environ.get(name)
            return float(raw) if raw else default

        families = tuple(f.strip() for f in environ.get("EMD_FAMILIES", "").split(",") if f.strip())
        unknown = set(families) - set(BY_NAME)
        if unknown:
            raise ValueError(f"EMD_FAMILIES has unknown families: {sorted(unknown)}")
        return cls(
            api_key_secret_id=environ.get("EMD_API_KEY_SECRET_ID") or None,
            api_keys_file=environ.get("EMD_API_KEYS_FILE") or None,
            key_cache_seconds=number("EMD_KEY_CACHE_SECONDS", 60.0),
            key_stale_max_seconds=number("EMD_KEY_STALE_MAX_SECONDS", 300.0),
            enforce_key_limits=environ.get("EMD_ENFORCE_KEY_LIMITS", "") in ("1", "true", "yes"),
            upstream_timeout_seconds=number("EMD_UPSTREAM_TIMEOUT_SECONDS", 900.0),
            upstream_max_attempts=int(number("EMD_UPSTREAM_MAX_ATTEMPTS", 2)),
            max_concurrency=int(number("EMD_MAX_CONCURRENCY", 256)),
            max_body_bytes=int(number("EMD_MAX_BODY_BYTES", 6 * 1024 * 1024)),
            max_audio_bytes=int(number("EMD_MAX_AUDIO_BYTES", 4 * 1024 * 1024)),
            keepalive_seconds=number("EMD_KEEPALIVE_SECONDS", 15.0),
            wake_wait_seconds=max(0.0, number("EMD_WAKE_WAIT_SECONDS", 60.0)),
            wake_stream_wait_seconds=max(0.0, number("EMD_WAKE_STREAM_WAIT_SECONDS", 600.0)),
            wake_poll_seconds=max(0.05, number("EMD_WAKE_POLL_SECONDS", 5.0)),
            families=tuple(f for f in families if f != MODELS) if families else API_FAMILIES,
        )
