from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import botocore.loaders
import botocore.session
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


@pytest.fixture(scope="session", autouse=True)
def _one_botocore_loader() -> Iterator[None]:
    """Every botocore session reads and parses its JSON models (endpoints, and each
    service's: sagemaker's alone is megabytes) again, and the CLIs under test and moto
    make new sessions per command, a few tenths of a second each. One loader per data
    path for the whole run reads each file once; the models are the same files, so
    nothing a test observes changes."""
    shared = functools.cache(botocore.loaders.create_loader)

    def create_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
        loader = shared(search_path_string)
        # Each boto3 Session appends boto3's data path to its loader: once is enough.
        loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
        return loader

    with pytest.MonkeyPatch.context() as patch:
        # The session module calls it by the name it imported.
        patch.setattr(botocore.session, "create_loader", create_loader)
        yield
