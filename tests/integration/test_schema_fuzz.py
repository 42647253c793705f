"""Schemathesis against the running gateway's own OpenAPI schema (/openapi.json): for
every operation, requests generated from the schema (valid ones and deliberately
invalid ones), sent with the Bearer key. No answer may be a 5xx, and every non-2xx
must be in OpenAI's error shape.

EMD_FUZZ_EXAMPLES sets the examples per operation and mode (default 100, Hypothesis'
own default: 200 requests per route; raise it for a deeper run). Generating the bodies,
not sending them, is most of the time this takes. The time bound is Hypothesis'
example cap; no per-example deadline, as the machine's speed is not what is tested.

Schemathesis' pytest loader (`schemathesis.pytest.from_fixture`) reads a private
attribute pytest 9 no longer has, so the operations are driven with Hypothesis
directly, through `APIOperation.as_strategy`."""

from __future__ import annotations

import os
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode

from emd.local.gateway import LocalGateway

from .conftest import ECHO, KEY, RAW
from .reliability import assert_healthy, assert_no_leak

EXAMPLES = int(os.environ.get("EMD_FUZZ_EXAMPLES", "100"))
OPERATIONS = [
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model_id}"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/responses"),
    ("GET", "/v1/responses/{response_id}"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/rerank"),
    ("POST", "/v1/invocations"),
    ("POST", "/v1/audio/transcriptions"),
    ("POST", "/v1/audio/translations"),
]
# Where the model answers instantly (echo), half the generated bodies get a real model
# id, so generation reaches the engines and not only the 404 of an unknown model.
# Embeddings and rerank keep generated ids: a real embedding model is behind them, and
# a fuzzed batch of a thousand documents takes its time.
VALID_MODELS = {
    "/v1/chat/completions": ECHO,
    "/v1/completions": ECHO,
    "/v1/responses": ECHO,
    "/v1/messages": ECHO,
    "/v1/invocations": RAW,
}
# Anthropic's API answers errors in its own shape.
ANTHROPIC_PATHS = ("/v1/messages", "/v1/messages/count_tokens")


@pytest.fixture(scope="module")
def api_schema(gateway: LocalGateway) -> Any:
    root = gateway.base_url.removesuffix("/v1")
    return schemathesis.openapi.from_url(f"{root}/openapi.json")


def test_the_schema_lists_every_route(api_schema: Any) -> None:
    """A route missing here would go unfuzzed."""
    listed = {(method.upper(), path) for path, methods in api_schema.raw_schema["paths"].items()
              for method in methods}  # fmt: skip
    assert listed == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_generated_requests_never_5xx_and_errors_are_openai_shaped(
    gateway: LocalGateway, api_schema: Any, method: str, path: str
) -> None:
    operation = api_schema[path][method]
    model = VALID_MODELS.get(path)
    headers = {"Authorization": f"Bearer {KEY}"}

    # Invalid requests need something to make invalid: a JSON body (a string path
    # parameter or no input at all leaves Hypothesis nothing to generate).
    modes = [GenerationMode.POSITIVE]
    if operation.body:
        modes.append(GenerationMode.NEGATIVE)
    for mode in modes:

        @hypothesis.given(case=operation.as_strategy(mode), real_model=st.booleans())
        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        def check(case: Any, real_model: bool) -> None:
            if model is not None and real_model and isinstance(case.body, dict):
                case.body["model"] = model
            response = case.call(headers=headers, timeout=30)
            assert response.status_code < 500, (
                f"{case.as_curl_command(headers=headers)}\n-> {response.status_code}: "
                f"{response.text[:500]}"
            )
            assert_no_leak(response.text)
            if response.status_code >= 400:
                # Schemathesis' headers: lowercase names, a list of values each.
                content_type = (response.headers.get("content-type") or [""])[0]
                assert content_type.startswith("application/json"), content_type
                body = response.json()
                if path in ANTHROPIC_PATHS:
                    assert isinstance(body, dict) and body.get("type") == "error", body
                    assert set(body["error"]) == {"type", "message"}, body
                else:
                    assert isinstance(body, dict) and set(body) == {"error"}, body
                    assert set(body["error"]) == {"message", "type", "param", "code"}, body
                assert isinstance(body["error"]["message"], str) and body["error"]["message"]

        check()
    assert_healthy(gateway)
