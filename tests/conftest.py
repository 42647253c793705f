from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.retries import standard

# Keep the per-request log line out of test output unless asked for.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
# Usage metrics print one EMF line per request; tests/unit/test_metrics.py checks them.
os.environ.setdefault("EMD_USAGE_METRICS", "0")


@pytest.fixture(scope="session", autouse=True)
def _no_retry_jitter() -> Iterator[None]:
    """botocore's standard retry mode waits rand(0, 1) x base x 2^attempt before each
    retry (up to 1 s for a first throttling retry). Tests assert whether and how often a
    call is retried, never how long it waited, so the random factor is 0 here: retries
    go at once, while the rest of the delay rule (x-amz-retry-after) still applies.

    Session-wide, so it is in place before any fixture builds a client: a backoff takes
    its random source when it is created (the proxy's SageMaker client, boto3's)."""
    original = standard.ExponentialBackoff.__init__

    def without_jitter(
        self: standard.ExponentialBackoff, max_backoff: int = 20, random: Any = None, **kw: Any
    ) -> None:
        original(self, max_backoff, lambda: 0.0, **kw)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(standard.ExponentialBackoff, "__init__", without_jitter)
        yield
