"""Per-key limits enforced in process (emd serve): token bucket and calendar quotas."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from emd_proxy import limits
from emd_proxy.auth import KeyLimits, Principal
from emd_proxy.errors import RateLimitError
from emd_proxy.limits import KeyLimiter, period_end


class Clock:
    def __init__(self, wall: datetime) -> None:
        self.mono = 100.0
        self.wall = wall.timestamp()

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock(datetime(2026, 12, 5, 23, 59, 0, tzinfo=UTC))  # a Saturday
    monkeypatch.setattr(
        limits, "time", SimpleNamespace(monotonic=lambda: fake.mono, time=lambda: fake.wall)
    )
    return fake


def key(name: str = "ci", **kw) -> Principal:
    return Principal(name, None, KeyLimits(**kw) if kw else None)


def test_bucket_allows_the_burst_then_429_with_retry_after(clock) -> None:
    limiter = KeyLimiter()
    ci = key(rate=1.0, burst=2)
    limiter.check(ci)
    limiter.check(ci)
    with pytest.raises(RateLimitError) as info:
        limiter.check(ci)
    assert info.value.status == 429
    assert info.value.body()["error"]["type"] == "rate_limit_error"
    assert info.value.body()["error"]["code"] == "rate_limit_exceeded"
    assert info.value.headers() == {"Retry-After": "1"}
    clock.advance(1.0)
    limiter.check(ci)  # one token back


def test_slow_rate_retry_after_is_the_refill_time(clock) -> None:
    limiter = KeyLimiter()
    slow = key(rate=0.1)  # burst defaults to max(1, ceil(0.1)) = 1
    limiter.check(slow)
    clock.advance(2)
    with pytest.raises(RateLimitError) as info:
        limiter.check(slow)
    assert info.value.retry_after == 8


def test_other_keys_and_unlimited_keys_are_unaffected(clock) -> None:
    limiter = KeyLimiter()
    limiter.check(key("a", rate=1.0, burst=1))
    with pytest.raises(RateLimitError):
        limiter.check(key("a", rate=1.0, burst=1))
    limiter.check(key("b", rate=1.0, burst=1))
    for _ in range(100):
        limiter.check(key("free"))


def test_daily_quota_resets_at_utc_midnight(clock) -> None:
    limiter = KeyLimiter()
    q = key(quota=3)
    for _ in range(3):
        limiter.check(q)
    with pytest.raises(RateLimitError) as info:
        limiter.check(q)
    assert info.value.retry_after == 60  # 23:59:00 -> midnight
    assert "2026-12-06T00:00:00Z" in info.value.message
    clock.advance(60)
    limiter.check(q)


def test_a_refused_request_is_not_counted(clock) -> None:
    limiter = KeyLimiter()
    both = key(rate=1.0, burst=1, quota=2)
    limiter.check(both)
    with pytest.raises(RateLimitError):
        limiter.check(both)  # rate: not counted against the quota
    clock.advance(1)
    limiter.check(both)
    clock.advance(1)
    with pytest.raises(RateLimitError) as info:
        limiter.check(both)
    assert "quota" in info.value.message


def test_changed_limits_start_afresh(clock) -> None:
    limiter = KeyLimiter()
    limiter.check(key(quota=1))
    with pytest.raises(RateLimitError):
        limiter.check(key(quota=1))
    limiter.check(key(quota=2))


@pytest.mark.parametrize(
    ("now", "period", "end"),
    [
        (datetime(2026, 12, 5, 23, 59, tzinfo=UTC), "DAY", datetime(2026, 12, 6, tzinfo=UTC)),
        (datetime(2026, 12, 5, 12, tzinfo=UTC), "WEEK", datetime(2026, 12, 6, tzinfo=UTC)),
        (datetime(2026, 12, 6, 0, tzinfo=UTC), "WEEK", datetime(2026, 12, 13, tzinfo=UTC)),
        (datetime(2026, 12, 7, 9, tzinfo=UTC), "WEEK", datetime(2026, 12, 13, tzinfo=UTC)),
        (datetime(2026, 12, 5, tzinfo=UTC), "MONTH", datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2026, 1, 31, 23, tzinfo=UTC), "MONTH", datetime(2026, 2, 1, tzinfo=UTC)),
        (datetime(2026, 2, 1, tzinfo=UTC), "MONTH", datetime(2026, 3, 1, tzinfo=UTC)),
    ],
)
def test_period_end(now, period, end) -> None:
    assert period_end(now.timestamp(), period) == end.timestamp()


class _NoAws:
    """create_app builds no SageMaker client when given one."""

    async def aclose(self) -> None:
        pass


def _app(enforce: bool):
    from fastapi.testclient import TestClient

    from emd_proxy.app import create_app
    from emd_proxy.auth import KeyStore
    from emd_proxy.registry import Registry
    from emd_proxy.settings import Settings

    app = create_app(
        Settings(enforce_key_limits=enforce),
        registry=Registry([]),
        keys=KeyStore.static({"q": {"key": "sk-q", "limits": {"quota": 1}}}),
        sagemaker=_NoAws(),  # type: ignore[arg-type]
    )
    return TestClient(app, headers={"Authorization": "Bearer sk-q"})


def test_the_app_enforces_limits_only_when_told() -> None:
    # Deployed (the default) API Gateway's usage plans enforce them, not the Lambda.
    with _app(enforce=False) as client:
        assert [client.get("/v1/models").status_code for _ in range(3)] == [200, 200, 200]
    with _app(enforce=True) as client:
        assert [client.get("/v1/models").status_code for _ in range(2)] == [200, 429]


def test_enforce_key_limits_setting_from_env() -> None:
    from emd_proxy.settings import Settings

    assert not Settings.from_env({}).enforce_key_limits
    assert Settings.from_env({"EMD_ENFORCE_KEY_LIMITS": "1"}).enforce_key_limits
    assert Settings.from_env({"EMD_KEY_STALE_MAX_SECONDS": "30"}).key_stale_max_seconds == 30
