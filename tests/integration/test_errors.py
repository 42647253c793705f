"""Bad input and bad keys: clear OpenAI-shaped errors, and the server keeps serving."""

from __future__ import annotations

import httpx
import openai
import pytest

from emd.local.gateway import LocalGateway

from .conftest import ECHO, GHOST, KEY, SMOL

HI = [{"role": "user", "content": "hi"}]


def assert_openai_error(response: httpx.Response, status: int, type_: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == type_
    assert error["message"]
    for leak in ("Traceback", 'File "', "arn:aws", "123456789012", KEY):
        assert leak not in response.text
    return error


def test_wrong_key_raises_authentication_error(gateway: LocalGateway) -> None:
    bad = openai.OpenAI(base_url=gateway.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model=SMOL, messages=HI)
    assert info.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}, {"X-Api-Key": KEY}],
)
def test_missing_or_malformed_authorization_is_401(
    gateway: LocalGateway, headers: dict[str, str]
) -> None:
    response = httpx.get(f"{gateway.base_url}/models", headers=headers)
    assert_openai_error(response, 401, "authentication_error")


def test_health_needs_no_key_and_reveals_nothing(gateway: LocalGateway) -> None:
    response = httpx.get(gateway.base_url.removesuffix("/v1") + "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_unknown_model_raises_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model/dev", messages=HI)
    assert info.value.code == "model_not_found"
    assert info.value.param == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model/dev")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model": "echo/local", "messages": [', None),
        (b"[]", None),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "echo/local"}', "messages"),
        (b'{"model": "echo/local", "messages": []}', "messages"),
        (
            b'{"model": "echo/local", "messages": [{"role": "robot", "content": "x"}]}',
            "messages.0.role",
        ),
        (
            b'{"model": "echo/local", "messages": [{"role": "user", "content": 5}]}',
            "messages.0.content",
        ),
        (
            b'{"model": "echo/local", "messages": [{"role": "user", "content": "x"}], '
            b'"temperature": -1}',
            "temperature",
        ),
        (
            b'{"model": "echo/local", "messages": [{"role": "user", "content": "x"}], '
            b'"max_tokens": -1}',
            "max_tokens",
        ),
        (
            b'{"model": "echo/local", "messages": [{"role": "user", "content": "x"}], '
            b'"temperature": NaN}',
            None,  # NaN is not JSON: the body does not parse
        ),
    ],
)
def test_malformed_bodies_get_400_naming_the_field(
    http: httpx.Client, body: bytes, param: str | None
) -> None:
    response = http.post(
        "/chat/completions", content=body, headers={"Content-Type": "application/json"}
    )
    error = assert_openai_error(response, 400, "invalid_request_error")
    assert error["param"] == param


def test_sdk_raises_bad_request_for_invalid_values(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=ECHO, messages=HI, top_p=3)
    assert info.value.param == "top_p"


def test_body_over_the_limit_is_413_before_it_is_read(http: httpx.Client) -> None:
    huge = (
        b'{"model": "echo/local", "messages": [{"role": "user", "content": "'
        + (b"x" * (2 * 1024 * 1024))
        + b'"}]}'
    )
    response = http.post(
        "/chat/completions", content=huge, headers={"Content-Type": "application/json"}
    )
    error = assert_openai_error(response, 413, "invalid_request_error")
    assert error["code"] == "request_too_large"


def test_chunked_body_over_the_limit_is_413(http: httpx.Client) -> None:
    def pieces():
        yield b'{"model": "echo/local", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}]}'

    response = http.post(
        "/chat/completions", content=pieces(), headers={"Content-Type": "application/json"}
    )
    assert_openai_error(response, 413, "invalid_request_error")


def test_unknown_route_and_method_are_openai_shaped(http: httpx.Client) -> None:
    assert_openai_error(http.get("/no/such/route"), 404, "invalid_request_error")
    assert_openai_error(http.get("/chat/completions"), 405, "invalid_request_error")


def test_missing_endpoint_is_404_model_not_found(http: httpx.Client) -> None:
    # SageMaker answers ValidationError "Endpoint ... of account ... not found.": the
    # endpoint is gone (or never deployed), so no 503 and no Retry-After.
    endpoint = "emd-ghost-local"
    for stream in (False, True):
        response = http.post(
            "/chat/completions", json={"model": GHOST, "messages": HI, "stream": stream}
        )
        error = assert_openai_error(response, 404, "invalid_request_error")
        assert error["code"] == "model_not_found"
        assert error["param"] == "model"
        assert f"The endpoint {endpoint} does not exist" in error["message"]
        assert "deploy it" in error["message"]
        assert "retry-after" not in response.headers


def test_sdk_does_not_retry_a_missing_endpoint(gateway: LocalGateway) -> None:
    emulator = gateway.stack.emulator
    assert emulator is not None
    endpoint = "emd-ghost-local"
    before = emulator.stats.by_endpoint.get(endpoint, 0)
    retrying = openai.OpenAI(base_url=gateway.base_url, api_key=KEY, max_retries=2)
    with pytest.raises(openai.NotFoundError) as info:
        retrying.chat.completions.create(model=GHOST, messages=HI)
    assert info.value.code == "model_not_found"
    # One call reached SageMaker: the SDK retries 408/409/429/5xx, never a 404.
    assert emulator.stats.by_endpoint[endpoint] == before + 1


def test_server_keeps_serving_after_errors(client: openai.OpenAI, http: httpx.Client) -> None:
    for body in (b"{", b"null", b'{"model": 1}', b"\xff\xfe"):
        assert http.post("/chat/completions", content=body).status_code == 400
    completion = client.chat.completions.create(model=ECHO, messages=HI)
    assert completion.choices[0].message.content == "hi"
