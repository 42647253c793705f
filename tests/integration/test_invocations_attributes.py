"""CustomAttributes on /v1/invocations: the vLLM fakes route by `route=` as the DLC
does, so a caller's foreign route would reach another container route; the gateway
refuses it before the call."""

from __future__ import annotations

import httpx

from emd.local.gateway import LocalGateway

from .conftest import ECHO, RAW, endpoint_of

CHAT = {"messages": [{"role": "user", "content": "routed"}]}


def test_the_vllm_fake_routes_by_custom_attributes(gateway: LocalGateway) -> None:
    """Straight to the emulator (no gateway): `route=/ping` reaches the ping route."""
    url = f"{gateway.stack.emulator_url}/endpoints/{endpoint_of(gateway, ECHO)}/invocations"
    with httpx.Client(timeout=30) as direct:
        plain = direct.post(url, json=CHAT)
        routed = direct.post(
            url, json=CHAT, headers={"X-Amzn-SageMaker-Custom-Attributes": "route=/ping"}
        )
    assert plain.json()["choices"][0]["message"]["content"] == "routed"
    assert routed.status_code == 200
    assert routed.content == b""  # the ping answer, not a chat completion


def test_a_foreign_route_is_refused(http: httpx.Client) -> None:
    for attributes in ("route=/ping", "trace=1,route=/v1/embeddings"):
        response = http.post(
            "/invocations", json={"model": RAW, "input": CHAT, "custom_attributes": attributes}
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == "custom_attributes"
        assert error["type"] == "invalid_request_error"


def test_a_model_choosing_key_is_refused(http: httpx.Client) -> None:
    body = {"model": RAW, "input": CHAT, "custom_attributes": "model_name=other"}
    response = http.post("/invocations", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "custom_attributes"


def test_own_route_and_plain_attributes_still_pass(http: httpx.Client) -> None:
    for attributes in ("route=/invocations", "accept_eula=true"):
        body = {"model": RAW, "input": CHAT, "custom_attributes": attributes, "stream": False}
        response = http.post("/invocations", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == "routed"
