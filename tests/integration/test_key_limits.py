"""Per-key limits enforced by the local gateway (as `emd serve` does), seen through the
real openai SDK: 429 rate_limit_exceeded with Retry-After, other keys unaffected."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest

from emd.local.gateway import LocalGateway, start_local_gateway
from emd_proxy.settings import Settings
from tests.integration.conftest import ECHO

HI = [{"role": "user", "content": "hi"}]
KEYS = {
    "free": "sk-free",
    # One token per minute after the burst of 2, so the third request is refused
    # however slow this machine is (a rate of 1/s would race the refill).
    "bursty": {"key": "sk-bursty", "limits": {"rate": 1 / 60, "burst": 2}},
    "daily": {"key": "sk-daily", "limits": {"quota": 3, "quota_period": "DAY"}},
    "claude": {"key": "sk-claude", "limits": {"quota": 1}},
}


@pytest.fixture(scope="module")
def limited() -> Iterator[LocalGateway]:
    gw = start_local_gateway([ECHO], keys=KEYS, settings=Settings(enforce_key_limits=True))
    yield gw
    gw.stop()


def sdk(gw: LocalGateway, key: str) -> openai.OpenAI:
    # The SDK retries 429s by default: off, so each call is one request.
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def test_rate_and_burst(limited: LocalGateway) -> None:
    client = sdk(limited, "sk-bursty")
    for _ in range(2):
        client.chat.completions.create(model=ECHO, messages=HI)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=ECHO, messages=HI)
    assert info.value.status_code == 429
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.type == "rate_limit_error"
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 60
    assert info.value.response.headers["x-request-id"]
    # Another key is unaffected.
    free = sdk(limited, "sk-free")
    for _ in range(5):
        free.chat.completions.create(model=ECHO, messages=HI)


def test_daily_quota(limited: LocalGateway) -> None:
    client = sdk(limited, "sk-daily")
    for _ in range(3):
        assert client.models.list().data
    before = time.time()
    with pytest.raises(openai.RateLimitError) as info:
        client.models.list()
    midnight = datetime.fromtimestamp(before, UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    ) + timedelta(days=1)
    retry_after = int(info.value.response.headers["retry-after"])
    assert 1 <= retry_after <= midnight.timestamp() - before + 1
    assert retry_after >= midnight.timestamp() - time.time() - 1
    assert "quota of 3 requests per day" in info.value.message
    assert sdk(limited, "sk-free").models.list().data


def test_limits_apply_before_the_body_is_read_and_keep_the_anthropic_shape(
    limited: LocalGateway,
) -> None:
    headers = {"x-api-key": "sk-claude", "anthropic-version": "2023-06-01"}
    body = {"model": ECHO, "max_tokens": 8, "messages": HI}
    with httpx.Client(base_url=limited.base_url, headers=headers, trust_env=False) as http:
        assert http.post("/messages", json=body).status_code == 200
        refused = http.post("/messages", content=b"{not json")
    assert refused.status_code == 429  # not 400: refused before the body was parsed
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["type"] == "error"
    assert refused.json()["error"]["type"] == "rate_limit_error"
