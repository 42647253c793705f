"""The one gate for container text (container_text.py) and what an engine's error
body means for the client (upstream_json.container_error), engine by engine."""

from __future__ import annotations

import json

import pytest

from emd_proxy.container_text import MAX_CLIENT_CHARS, sanitize
from emd_proxy.errors import InvalidRequestError, RateLimitError, UpstreamError
from emd_proxy.log import request_id
from emd_proxy.upstream_json import container_error, load_json_object

ENDPOINT = "emd-qwen3-8b-dev"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/opt/conda/lib/python3.11/site-packages/vllm/entrypoints/api_server.py", '
    "line 12, in generate\n    raise RuntimeError(prompt)\nRuntimeError: secret prompt"
)
# Everything a container or SageMaker may write that a caller must never read.
LEAKS = {
    "arn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/x",
    "account": "account 123456789012",
    "hyphenated account": "account 1234-5678-9012",
    "log group": "see /aws/sagemaker/Endpoints/emd-qwen3-8b-dev for details",
    "console": "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1",
    "endpoint": f"endpoint {ENDPOINT} failed",
    "endpoint path": "arn-less endpoint/emd-other-endpoint",
    "address": "connect to 10.0.12.7:8080 refused",
    "file": "in /opt/ml/model/tokenizer.json",
}


@pytest.mark.parametrize("leak", LEAKS.values(), ids=LEAKS.keys())
def test_sanitize_redacts_aws_and_host_details(leak: str) -> None:
    text = sanitize(f"Input validation error: {leak}", [ENDPOINT])
    assert text.startswith("Input validation error: ")
    assert "<redacted>" in text
    for secret in (
        "123456789012",
        "1234-5678-9012",
        "arn:aws",
        "/aws/sagemaker",
        ENDPOINT,
        "emd-other-endpoint",
        "amazon.com",
        "10.0.12.7",
        "/opt/ml",
    ):
        assert secret not in text


def test_sanitize_drops_the_traceback_and_all_after_it() -> None:
    text = sanitize(f"`top_p` must be < 1. {TRACEBACK}")
    assert text == "`top_p` must be < 1."
    java = "Async Inference Failure\n\tat ai.djl.python.engine.AsyncRequestManager.send(X.java:1)"
    assert sanitize(java) == "Async Inference Failure"


def test_sanitize_caps_the_length() -> None:
    text = sanitize("word " * 1000)
    assert len(text) <= MAX_CLIENT_CHARS
    assert text.endswith("…")


def test_sanitize_keeps_an_engines_ordinary_words() -> None:
    message = (
        "Input validation error: `stop` supports up to 4 stop sequences. Given: 5; "
        "max_tokens=4096 cannot be greater than 2048 (parameter=max_tokens, value=4096)"
    )
    assert sanitize(message, [ENDPOINT]) == message


# --- a failure: a fixed message, the text in the log ----------------------------------


def test_a_model_failure_names_the_request_and_logs_the_text(caplog) -> None:
    token = request_id.set("req_abc123")
    try:
        error = container_error(
            json.dumps({"error": {"message": f"CUDA OOM at {LEAKS['arn']}\n{TRACEBACK}"}}),
            500,
            endpoint=ENDPOINT,
        )
    finally:
        request_id.reset(token)
    assert type(error) is UpstreamError
    assert error.message == (
        "The model failed (request req_abc123). The details are in the gateway's logs."
    )
    (record,) = [r for r in caplog.records if r.getMessage() == "model failed"]
    assert record.request_id == "req_abc123"
    assert record.endpoint == ENDPOINT
    assert record.original_status == 500
    assert "CUDA OOM" in record.container_message


def test_the_logged_text_is_capped(caplog) -> None:
    container_error("x" * 100_000, 500)
    (record,) = [r for r in caplog.records if r.getMessage() == "model failed"]
    assert len(record.container_message) <= 2000


# --- every engine's in-band errors (a 200 answer or a stream) -------------------------

# TGI >= 2.4 streams every InferError with http_status_code 422: the text tells the kind.
TGI_STREAM = [
    ("Input validation error: `stop` supports up to 4 stop sequences. Given: 5",
     InvalidRequestError, 400),
    ("Tool error: Tool with name get_weather not found", InvalidRequestError, 400),
    ("Template error: unknown filter", InvalidRequestError, 400),
    ("Model is overloaded", RateLimitError, 429),
    ("Request failed during generation: Server error: CUDA out of memory", UpstreamError, 502),
    ("Incomplete generation", UpstreamError, 502),
]  # fmt: skip


@pytest.mark.parametrize(("message", "cls", "status"), TGI_STREAM)
def test_tgi_stream_errors_by_kind(message: str, cls: type, status: int) -> None:
    line = {"error": {"message": message, "http_status_code": 422}}
    with pytest.raises(cls) as info:
        load_json_object(json.dumps(line).encode(), "stream chunk")
    assert info.value.status == status
    if status < 500:
        assert info.value.message == message
    else:
        assert "CUDA" not in info.value.message


@pytest.mark.parametrize(
    ("error_type", "http_status", "cls"),
    [
        ("validation", 422, InvalidRequestError),
        ("tool_error", 422, InvalidRequestError),
        ("overloaded", 429, RateLimitError),
        ("generation", 424, UpstreamError),  # TGI's generation failure is a 424
        ("incomplete_generation", 500, UpstreamError),
        ("backend", 424, UpstreamError),  # TEI's backend failure is a 424
        ("unhealthy", 503, UpstreamError),  # TEI
        ("tokenizer", 422, InvalidRequestError),  # TEI
    ],
)
def test_tgi_and_tei_bodies_by_error_type(error_type: str, http_status: int, cls: type) -> None:
    body = {"error": f"Something about {error_type}", "error_type": error_type}
    # In a stream (TGI before 2.4), and as a container's non-2xx answer.
    with pytest.raises(cls):
        load_json_object(json.dumps(body).encode(), "stream chunk")
    assert type(container_error(json.dumps(body), http_status)) is cls


def test_vllm_errors_keep_their_status_words_and_param() -> None:
    info = {"message": "top_logprobs must be <= 20", "type": "BadRequestError",
            "param": "top_logprobs", "code": 400}  # fmt: skip
    for status in (None, 400):  # in a stream, and as a ModelError's body
        error = container_error({"error": info}, status)
        assert type(error) is InvalidRequestError
        assert error.message == "top_logprobs must be <= 20"
        assert error.param == "top_logprobs"
    throttled = container_error({"error": {**info, "message": "busy", "code": 429}}, None)
    assert type(throttled) is RateLimitError
    failed = container_error({"error": {**info, "message": "engine dead", "code": 500}}, None)
    assert type(failed) is UpstreamError
    assert "engine dead" not in failed.message


def test_a_4xx_message_is_sanitized_not_dropped() -> None:
    text = f"bad `stop` ({LEAKS['account']}, {LEAKS['log group']})\n{TRACEBACK}"
    error = container_error(json.dumps({"error": {"message": text, "code": 400}}), 400)
    assert type(error) is InvalidRequestError
    assert error.message.startswith("bad `stop`")
    assert "123456789012" not in error.message
    assert "Traceback" not in error.message
    assert "secret prompt" not in error.message
