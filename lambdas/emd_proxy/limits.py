"""Per-key limits (`limits` in a key document) enforced in this process: a token bucket
(rate, burst) and a request quota per calendar period in UTC.

Only `emd serve` turns this on (EMD_ENFORCE_KEY_LIMITS). Deployed, API Gateway usage
plans enforce the same limits before the Lambda runs; counting here would also be per
Lambda instance, which means nothing. Used on the event loop only, so no locks; each
check is O(1). State is kept per key name and starts afresh when a key's limits change.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .auth import KeyLimits, Principal, QuotaPeriod
from .errors import RateLimitError


@dataclass
class _State:
    limits: KeyLimits
    tokens: float
    refilled_at: float  # monotonic
    period_end: float = 0.0  # wall clock (epoch seconds) when the quota resets
    used: int = 0


class KeyLimiter:
    def __init__(self) -> None:
        self._states: dict[str, _State] = {}

    def check(self, principal: Principal) -> None:
        """Counts one request against the key's limits, or raises RateLimitError
        (429, with Retry-After) and counts nothing."""
        limits = principal.limits
        if limits is None:
            return
        now = time.monotonic()
        state = self._states.get(principal.name)
        if state is None or state.limits != limits:
            state = _State(limits, float(limits.effective_burst or 0), now)
            self._states[principal.name] = state

        if limits.quota is not None:
            wall = time.time()
            if wall >= state.period_end:
                state.period_end = period_end(wall, limits.quota_period)
                state.used = 0
            if state.used >= limits.quota:
                wait = max(1, math.ceil(state.period_end - wall))
                period = limits.quota_period.lower()
                raise RateLimitError(
                    f"This API key's quota of {limits.quota} requests per {period} is used "
                    f"up; it resets at {_iso(state.period_end)}.",
                    retry_after=wait,
                )

        if limits.rate is not None:
            burst = limits.effective_burst or 1
            state.tokens = min(burst, state.tokens + (now - state.refilled_at) * limits.rate)
            state.refilled_at = now
            if state.tokens < 1:
                wait = max(1, math.ceil((1 - state.tokens) / limits.rate))
                raise RateLimitError(
                    f"This API key is limited to {limits.rate:g} requests per second "
                    f"(bursts of {burst}). Retry after {wait} s.",
                    retry_after=wait,
                )
            state.tokens -= 1

        if limits.quota is not None:
            state.used += 1


def period_end(now: float, period: QuotaPeriod) -> float:
    """When the calendar period holding `now` ends (UTC; weeks start on Sunday, like
    API Gateway's usage plans with offset 0)."""
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "DAY":
        end = day + timedelta(days=1)
    elif period == "WEEK":
        end = day + timedelta(days=7 - (day.weekday() + 1) % 7)
    else:
        first = day.replace(day=1)
        end = (first + timedelta(days=32)).replace(day=1)
    return end.timestamp()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
