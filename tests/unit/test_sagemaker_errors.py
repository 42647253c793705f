"""`map_upstream_error`: every failure botocore raises -> the documented client error.

The ClientErrors are real: a real botocore client parses real HTTP error responses
(rest-json, `x-amzn-ErrorType`), so `exc.response` has exactly the shape botocore 1.44
gives (modeled ModelError fields at the top level of the response dict)."""

from __future__ import annotations

import json
from collections.abc import Callable

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from emd_proxy.errors import (
    InternalError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelNotReadyError,
    ProxyError,
    RateLimitError,
    UpstreamError,
    UpstreamTimeoutError,
)
from emd_proxy.log import request_id
from emd_proxy.sagemaker_errors import map_upstream_error

ACCOUNT = "123456789012"
ENDPOINT = "emd-qwen3-8b-dev"
LOG_STREAM_ARN = (
    f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{ENDPOINT}"
    ":log-stream:AllTraffic/i-0123456789abcdef0"
)
# What SageMaker writes into ModelError's Message: it names the account and the logs.
MODEL_ERROR_MESSAGE = (
    'Received client error ({status}) from primary with message "{original}". See '
    f"https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEventViewer:"
    f"group=/aws/sagemaker/Endpoints/{ENDPOINT} in account {ACCOUNT} for more information."
)


class _Raw:
    """The urllib3 response botocore reads a body from."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, *_, **__):
        yield self.body

    def read(self, *_, **__) -> bytes:
        body, self.body = self.body, b""
        return body

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def raise_aws() -> Callable[..., ClientError]:
    """Returns `call(status, error_type, body)`: the exception botocore raises when
    SageMaker answers InvokeEndpoint with that HTTP error."""
    client = botocore.session.get_session().create_client(
        "sagemaker-runtime",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    pending: dict[str, AWSResponse] = {}

    def send(request, **_):
        return pending.pop("response")

    client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", send)

    def call(status: int, error_type: str, body: dict) -> ClientError:
        pending["response"] = AWSResponse(
            "https://runtime.sagemaker.us-east-1.amazonaws.com/",
            status,
            {
                # SageMaker appends the Coral namespace; botocore strips it.
                "x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.sagemaker/",
                "Content-Type": "application/json",
                "x-amzn-RequestId": "req-1",
            },
            _Raw(json.dumps(body).encode()),
        )
        with pytest.raises(ClientError) as info:
            client.invoke_endpoint(EndpointName=ENDPOINT, Body=b"{}")
        return info.value

    return call


def model_error(raise_aws, original_status: int | None, original: str) -> ClientError:
    body: dict = {
        "Message": MODEL_ERROR_MESSAGE.format(status=original_status, original=original),
        "OriginalMessage": original,
        "LogStreamArn": LOG_STREAM_ARN,
    }
    if original_status is not None:
        body["OriginalStatusCode"] = original_status
    return raise_aws(424, "ModelError", body)


def assert_mapped(
    error: ProxyError, cls: type[ProxyError], status: int, type_: str, code: str | None
) -> None:
    assert type(error) is cls
    assert error.status == status
    body = error.body()["error"]
    assert body["type"] == type_
    assert body["code"] == code
    assert body["message"]
    assert ACCOUNT not in body["message"]
    assert "arn:aws" not in body["message"]


def test_the_botocore_shape_is_what_the_mapper_expects(raise_aws) -> None:
    exc = model_error(raise_aws, 400, "bad")
    assert type(exc).__name__ == "ModelError"  # the modeled exception class
    assert exc.response["Error"]["Code"] == "ModelError"
    assert exc.response["OriginalStatusCode"] == 400
    assert exc.response["OriginalMessage"] == "bad"
    assert exc.response["LogStreamArn"] == LOG_STREAM_ARN
    assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 424


# --- ModelError: what the container answered ---------------------------------------------

VLLM_CONTEXT_ERROR = json.dumps(
    {
        "error": {
            "message": "This model's maximum context length is 4096 tokens.",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }
)


@pytest.mark.parametrize("original_status", [400, 404, 422])
def test_container_4xx_is_400_with_the_containers_message(raise_aws, original_status) -> None:
    error = map_upstream_error(
        model_error(raise_aws, original_status, VLLM_CONTEXT_ERROR), ENDPOINT
    )
    assert_mapped(error, InvalidRequestError, 400, "invalid_request_error", None)
    assert error.message == "This model's maximum context length is 4096 tokens."


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ('{"object": "error", "message": "old vLLM shape"}', "old vLLM shape"),
        ('{"error": "TGI shape", "error_type": "validation"}', "TGI shape"),
        ('{"Message": "LMI shape"}', "LMI shape"),
        ("plain text from the container", "plain text from the container"),
    ],
)
def test_container_messages_of_other_engines_are_extracted(raise_aws, original, expected) -> None:
    error = map_upstream_error(model_error(raise_aws, 400, original), ENDPOINT)
    assert error.message == expected


def test_a_huge_container_message_is_cut(raise_aws) -> None:
    error = map_upstream_error(model_error(raise_aws, 400, "x" * 10_000), ENDPOINT)
    assert isinstance(error, InvalidRequestError)
    assert len(error.message) <= 500


def test_container_4xx_without_a_message_has_a_generic_one(raise_aws) -> None:
    error = map_upstream_error(model_error(raise_aws, 400, ""), ENDPOINT)
    assert_mapped(error, InvalidRequestError, 400, "invalid_request_error", None)


def test_container_429_is_rate_limited(raise_aws) -> None:
    error = map_upstream_error(model_error(raise_aws, 429, "busy"), ENDPOINT)
    assert_mapped(error, RateLimitError, 429, "rate_limit_error", "rate_limit_exceeded")
    assert error.headers()["Retry-After"].isdigit()


def test_lmis_mangled_vllm_400_is_the_clients_400_with_its_param(raise_aws) -> None:
    """LMI reports vLLM's ErrorResponse as its repr inside a 500."""
    mangled = (
        "error=ErrorInfo(message='Requested sample logprobs of 25, which is greater than "
        "max allowed: 20 (parameter=logprobs, value=25)', type='BadRequestError', "
        "param='logprobs', code=400)"
    )
    original = json.dumps({"code": 500, "message": mangled})
    error = map_upstream_error(model_error(raise_aws, 500, original), ENDPOINT)
    assert_mapped(error, InvalidRequestError, 400, "invalid_request_error", None)
    assert error.param == "logprobs"
    assert error.message.startswith("Requested sample logprobs of 25")
    # A mangled 5xx stays the model's failure.
    failed = mangled.replace("code=400", "code=500")
    error = map_upstream_error(
        model_error(raise_aws, 500, json.dumps({"message": failed})), ENDPOINT
    )
    assert type(error) is UpstreamError


@pytest.mark.parametrize("original_status", [500, 503])
def test_container_5xx_is_502(raise_aws, original_status) -> None:
    error = map_upstream_error(model_error(raise_aws, original_status, "CUDA OOM"), ENDPOINT)
    assert_mapped(error, UpstreamError, 502, "upstream_error", "bad_upstream_response")


def test_container_status_0_is_a_timeout(raise_aws) -> None:
    error = map_upstream_error(model_error(raise_aws, 0, ""), ENDPOINT)
    assert_mapped(error, UpstreamTimeoutError, 504, "timeout", "upstream_timeout")


def test_sagemaker_timed_out_message_without_status_is_a_timeout(raise_aws) -> None:
    exc = raise_aws(
        424,
        "ModelError",
        {
            "Message": "Your invocation timed out while waiting for a response from container "
            f"primary. See {LOG_STREAM_ARN}",
            "LogStreamArn": LOG_STREAM_ARN,
        },
    )
    error = map_upstream_error(exc, ENDPOINT)
    assert_mapped(error, UpstreamTimeoutError, 504, "timeout", "upstream_timeout")


# --- SageMaker's own errors -----------------------------------------------------------


def test_validation_error_endpoint_not_found_is_404_model_not_found(raise_aws) -> None:
    # SageMaker's answer for an endpoint that does not exist (deleted, never deployed):
    # waiting does not help, so no 503 and no Retry-After (the openai SDK would retry).
    exc = raise_aws(
        400,
        "ValidationError",
        {
            "Message": f"Endpoint {ENDPOINT} of account {ACCOUNT} not found.",
        },
    )
    error = map_upstream_error(exc, ENDPOINT)
    assert_mapped(error, ModelNotFoundError, 404, "invalid_request_error", "model_not_found")
    assert "Retry-After" not in error.headers()
    assert f"The endpoint {ENDPOINT} does not exist" in error.message
    assert "deploy it" in error.message


def test_other_validation_error_is_400(raise_aws) -> None:
    exc = raise_aws(
        400,
        "ValidationError",
        {"Message": f"1 validation error detected: arn:aws:sagemaker:us-east-1:{ACCOUNT}:x"},
    )
    error = map_upstream_error(exc, ENDPOINT)
    assert_mapped(error, InvalidRequestError, 400, "invalid_request_error", None)


def test_model_not_ready_is_503_with_retry_after(raise_aws) -> None:
    exc = raise_aws(
        429,
        "ModelNotReadyException",
        {"Message": f"Model for endpoint arn:aws:sagemaker:us-east-1:{ACCOUNT}:x is not ready"},
    )
    error = map_upstream_error(exc, ENDPOINT)
    assert_mapped(error, ModelNotReadyError, 503, "service_unavailable", "model_not_ready")
    assert int(error.headers()["Retry-After"]) > 0


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "ThrottlingException"), (400, "Throttling"), (429, "TooManyRequestsException")],
)
def test_throttling_is_429_with_retry_after(raise_aws, status, code) -> None:
    exc = raise_aws(status, code, {"message": f"Rate exceeded for account {ACCOUNT}"})
    assert exc.response["Error"]["Code"] == code
    error = map_upstream_error(exc, ENDPOINT)
    assert_mapped(error, RateLimitError, 429, "rate_limit_error", "rate_limit_exceeded")
    assert int(error.headers()["Retry-After"]) > 0


def test_service_unavailable_is_503(raise_aws) -> None:
    error = map_upstream_error(raise_aws(503, "ServiceUnavailable", {"Message": "x"}), ENDPOINT)
    assert_mapped(error, ModelNotReadyError, 503, "service_unavailable", "model_not_ready")
    assert "Retry-After" in error.headers()


@pytest.mark.parametrize(
    ("status", "code"), [(500, "InternalFailure"), (530, "InternalDependencyException")]
)
def test_sagemaker_internal_failures_are_502(raise_aws, status, code) -> None:
    exc = raise_aws(status, code, {"Message": f"failure in account {ACCOUNT}"})
    error = map_upstream_error(exc, ENDPOINT)
    assert_mapped(error, UpstreamError, 502, "upstream_error", "bad_upstream_response")


def test_access_denied_is_502(raise_aws) -> None:
    exc = raise_aws(
        400,
        "AccessDeniedException",
        {
            "Message": f"User: arn:aws:sts::{ACCOUNT}:assumed-role/emd-chat/fn is not "
            f"authorized to perform: sagemaker:InvokeEndpoint on resource: "
            f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/{ENDPOINT}"
        },
    )
    error = map_upstream_error(exc, ENDPOINT)
    assert_mapped(error, UpstreamError, 502, "upstream_error", "bad_upstream_response")


def test_model_stream_error_is_502_without_account_details(caplog) -> None:
    # The shape botocore's EventStream raises (EventStreamError is a ClientError).
    from botocore.exceptions import EventStreamError

    exc = EventStreamError(
        {
            "Error": {
                "Code": "ModelStreamError",
                "Message": f"Stream broken. See {LOG_STREAM_ARN} in account {ACCOUNT}.",
            }
        },
        "InvokeEndpointWithResponseStream",
    )
    token = request_id.set("req_stream1")
    try:
        error = map_upstream_error(exc, ENDPOINT)
    finally:
        request_id.reset(token)
    assert_mapped(error, UpstreamError, 502, "upstream_error", "bad_upstream_response")
    assert error.message == (
        "The model failed while streaming (request req_stream1). "
        "The details are in the gateway's logs."
    )
    # SageMaker's text is in the log, under the same request id.
    (record,) = [r for r in caplog.records if r.getMessage() == "model failed"]
    assert record.request_id == "req_stream1"
    assert "Stream broken" in record.container_message


def test_model_stream_error_never_forwards_the_containers_message() -> None:
    from botocore.exceptions import EventStreamError

    exc = EventStreamError(
        {"Error": {"Code": "ModelStreamError", "Message": "GPU fell off the bus"}},
        "InvokeEndpointWithResponseStream",
    )
    assert "GPU" not in map_upstream_error(exc, ENDPOINT).message


# --- failures below the HTTP layer ------------------------------------------------------


def test_read_timeout_is_504() -> None:
    exc = ReadTimeoutError(endpoint_url="https://runtime.sagemaker.us-east-1.amazonaws.com/")
    error = map_upstream_error(exc, ENDPOINT)
    assert_mapped(error, UpstreamTimeoutError, 504, "timeout", "upstream_timeout")


def test_connection_error_is_502() -> None:
    exc = EndpointConnectionError(endpoint_url="https://runtime.sagemaker.us-east-1.amazonaws.com/")
    error = map_upstream_error(exc, ENDPOINT)
    assert_mapped(error, UpstreamError, 502, "upstream_error", "bad_upstream_response")


def test_no_credentials_is_500_internal_error() -> None:
    error = map_upstream_error(NoCredentialsError(), ENDPOINT)
    assert_mapped(error, InternalError, 500, "internal_error", "internal_error")


def test_anything_else_is_502() -> None:
    error = map_upstream_error(OSError("connection reset"), ENDPOINT)
    assert_mapped(error, UpstreamError, 502, "upstream_error", "bad_upstream_response")
    assert "connection reset" not in error.message


def test_proxy_errors_pass_through_unchanged() -> None:
    original = RateLimitError("slow down", retry_after=3)
    assert map_upstream_error(original, ENDPOINT) is original


# --- the completeness table -------------------------------------------------------------

TABLE = [
    # (http status, error type, body, class, status, type, code)
    (400, "ValidationError", {"Message": f"Endpoint x of account {ACCOUNT} not found."},
     ModelNotFoundError, 404, "invalid_request_error", "model_not_found"),
    (400, "ValidationError", {"Message": f"Bad input arn:aws:sagemaker:::{ACCOUNT}"},
     InvalidRequestError, 400, "invalid_request_error", None),
    (429, "ModelNotReadyException", {"Message": f"not ready {ACCOUNT}"},
     ModelNotReadyError, 503, "service_unavailable", "model_not_ready"),
    (400, "ThrottlingException", {"message": f"Rate exceeded {ACCOUNT}"},
     RateLimitError, 429, "rate_limit_error", "rate_limit_exceeded"),
    (400, "Throttling", {"message": "Rate exceeded"},
     RateLimitError, 429, "rate_limit_error", "rate_limit_exceeded"),
    (429, "TooManyRequestsException", {"message": "Too many"},
     RateLimitError, 429, "rate_limit_error", "rate_limit_exceeded"),
    (503, "ServiceUnavailable", {"Message": f"unavailable {ACCOUNT}"},
     ModelNotReadyError, 503, "service_unavailable", "model_not_ready"),
    (500, "InternalFailure", {"Message": f"internal {LOG_STREAM_ARN}"},
     UpstreamError, 502, "upstream_error", "bad_upstream_response"),
    (530, "InternalDependencyException", {"Message": f"dependency {LOG_STREAM_ARN}"},
     UpstreamError, 502, "upstream_error", "bad_upstream_response"),
    (400, "AccessDeniedException", {"Message": f"denied arn:aws:iam::{ACCOUNT}:role/x"},
     UpstreamError, 502, "upstream_error", "bad_upstream_response"),
]  # fmt: skip


@pytest.mark.parametrize("row", TABLE, ids=[f"{row[1]}-{i}" for i, row in enumerate(TABLE)])
def test_service_error_table(raise_aws, row) -> None:
    http_status, error_type, body, cls, status, type_, code = row
    exc = raise_aws(http_status, error_type, body)
    error = map_upstream_error(exc, ENDPOINT)
    assert_mapped(error, cls, status, type_, code)
    if status in (429, 503):
        assert int(error.headers()["Retry-After"]) > 0


MODEL_ERROR_TABLE = [
    (400, InvalidRequestError, 400, "invalid_request_error", None),
    (404, InvalidRequestError, 400, "invalid_request_error", None),
    (422, InvalidRequestError, 400, "invalid_request_error", None),
    (429, RateLimitError, 429, "rate_limit_error", "rate_limit_exceeded"),
    (500, UpstreamError, 502, "upstream_error", "bad_upstream_response"),
    (503, UpstreamError, 502, "upstream_error", "bad_upstream_response"),
    (0, UpstreamTimeoutError, 504, "timeout", "upstream_timeout"),
]


@pytest.mark.parametrize("row", MODEL_ERROR_TABLE, ids=[str(row[0]) for row in MODEL_ERROR_TABLE])
@pytest.mark.parametrize(
    "original",
    [
        VLLM_CONTEXT_ERROR,
        "",
        "not json at all",
        # A container that echoes where it runs must not make us leak it either.
        json.dumps({"error": {"message": f"failed; logs at {LOG_STREAM_ARN}"}}),
    ],
    ids=["vllm", "empty", "text", "arn-in-container-message"],
)
def test_model_error_table(raise_aws, row, original) -> None:
    original_status, cls, status, type_, code = row
    error = map_upstream_error(model_error(raise_aws, original_status, original), ENDPOINT)
    assert_mapped(error, cls, status, type_, code)


# --- the client wrapper -----------------------------------------------------------------


# --- context overflow, any engine, any status (issue 15.3) ----------------------------

_REAL_VLLM_OVERFLOW = (
    "You passed 3000 input tokens and requested 0 output tokens. However, the model's "
    "context length is only 2048 tokens, resulting in a maximum input length of 2048 "
    "tokens. Please reduce the length of the input prompt. (parameter=input_tokens, "
    "value=3000)"
)


@pytest.mark.parametrize(
    ("original_status", "original"),
    [
        (
            400,
            json.dumps(
                {
                    "error": {
                        "message": _REAL_VLLM_OVERFLOW,
                        "type": "BadRequestError",
                        "param": "input_tokens",
                        "code": 400,
                    }
                }
            ),
        ),
        (
            422,
            json.dumps(
                {
                    "error": "Input validation error: `inputs` tokens + `max_new_tokens` must "
                    "be <= 2048. Given: 3000 `inputs` tokens and 10 `max_new_tokens`",
                    "error_type": "validation",
                }
            ),
        ),
        # LMI: vLLM's returned ErrorResponse, mangled into a 500.
        (
            500,
            json.dumps(
                {
                    "error": f"error=ErrorInfo(message='{_REAL_VLLM_OVERFLOW}', "
                    "type='BadRequestError', param='input_tokens', code=400)",
                    "code": 500,
                }
            ),
        ),
    ],
    ids=["vllm", "tgi", "lmi"],
)
def test_container_context_overflow_is_context_length_exceeded(
    raise_aws, original_status, original
) -> None:
    error = map_upstream_error(model_error(raise_aws, original_status, original), ENDPOINT)
    assert_mapped(
        error, InvalidRequestError, 400, "invalid_request_error", "context_length_exceeded"
    )
    assert "maximum context length is 2048 tokens; your prompt has 3000 tokens" in error.message


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        (
            '{"detail": "Could not decode the audio file (InvalidDataError: bad). Send wav."}',
            "Could not decode the audio file (InvalidDataError: bad). Send wav.",
        ),
        (
            '{"detail": [{"loc": ["body", "file"], "msg": "Field required", "type": "missing"}]}',
            "file: Field required",
        ),
    ],
    ids=["text", "validation-list"],
)
def test_fastapi_detail_is_a_plain_message(raise_aws, original, expected) -> None:
    # The WhisperX DLC (FastAPI) answers errors as {"detail": ...}.
    error = map_upstream_error(model_error(raise_aws, 400, original), ENDPOINT)
    assert_mapped(error, InvalidRequestError, 400, "invalid_request_error", None)
    assert error.message == expected
