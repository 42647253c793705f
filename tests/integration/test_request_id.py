"""Every answer carries `x-request-id` (the SDKs expose it as `request_id`): successes,
streams and errors, including those raised before a route runs."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from emd.local.gateway import LocalGateway

from .conftest import ECHO, KEY

GENERATED = re.compile(r"req_[0-9a-f]{32}")


def test_the_sdk_sees_a_request_id_on_answers_and_streams(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=ECHO, messages=[{"role": "user", "content": "hi"}]
    )
    assert GENERATED.fullmatch(raw.headers["x-request-id"])
    assert raw.parse().choices[0].message.content == "hi"
    with client.chat.completions.with_streaming_response.create(
        model=ECHO, messages=[{"role": "user", "content": "hi"}], stream=True
    ) as stream:
        assert GENERATED.fullmatch(stream.headers["x-request-id"])


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/v1/models", {}, 401),  # refused in the middleware
        ("/v1/models/nope", {"Authorization": f"Bearer {KEY}"}, 404),  # in a route
        ("/v1/chat/completions", {"Authorization": f"Bearer {KEY}"}, 405),  # by the router
    ],
)
def test_errors_carry_one_too(
    gateway: LocalGateway, path: str, headers: dict[str, str], status: int
) -> None:
    root = gateway.base_url.removesuffix("/v1")
    response = httpx.get(root + path, headers=headers)
    assert response.status_code == status
    assert GENERATED.fullmatch(response.headers["x-request-id"])


def test_a_plain_client_id_is_kept_and_anything_else_replaced(gateway: LocalGateway) -> None:
    url = gateway.base_url + "/models"
    auth = {"Authorization": f"Bearer {KEY}"}
    mine = httpx.get(url, headers={**auth, "x-request-id": "trace-42.a:b"})
    assert mine.headers["x-request-id"] == "trace-42.a:b"
    forged = httpx.get(url, headers={**auth, "x-request-id": "a b\tc" + "x" * 200})
    assert GENERATED.fullmatch(forged.headers["x-request-id"])
