"""`SigV4Signer` signs exactly what botocore's `SigV4Auth` signs: for the same serialized
request at the same instant, the same headers, byte for byte (the old request path:
serializer -> prepare_request_dict -> AWSRequest -> SigV4Auth -> prepare())."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.auth
import botocore.session
import pytest
from botocore.awsrequest import create_request_object, prepare_request_dict
from botocore.credentials import ReadOnlyCredentials
from botocore.serialize import create_serializer

from emd_proxy.sigv4 import SigV4Signer

NOW = datetime(2026, 11, 26, 23, 59, 58, tzinfo=UTC)
USER_AGENT = "emd-gateway test"
MODEL = botocore.session.get_session().get_service_model("sagemaker-runtime")
SERIALIZER = create_serializer(MODEL.protocol, include_validation=False)
KEYS = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None)
SESSION = ReadOnlyCredentials("ASIAEXAMPLE", "secret/with+odd=chars", "FwoGZXIvYXdzE//token==")


def serialized(operation: str, url: str, params: dict[str, Any]) -> dict[str, Any]:
    request = SERIALIZER.serialize_to_request(params, MODEL.operation_model(operation))
    prepare_request_dict(request, url, user_agent=USER_AGENT)
    return request


def botocores_headers(
    request: dict[str, Any], credentials: ReadOnlyCredentials, now: datetime, monkeypatch
) -> dict[str, str]:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now.replace(tzinfo=None))
    aws = create_request_object({**request, "headers": dict(request["headers"])})
    botocore.auth.SigV4Auth(credentials, "sagemaker", "us-west-2").add_auth(aws)
    prepared = aws.prepare()
    return {k: v for k, v in prepared.headers.items() if k != "Content-Length"}


def ours(
    signer: SigV4Signer, request: dict[str, Any], credentials: ReadOnlyCredentials, now: datetime
) -> dict[str, str]:
    return signer.sign(request["url"], dict(request["headers"]), request["body"], credentials, now)


URLS = [
    "https://runtime.sagemaker.us-west-2.amazonaws.com",
    "https://runtime.sagemaker.us-west-2.amazonaws.com:443",
    "https://vpce-0abc.runtime.sagemaker.us-west-2.vpce.amazonaws.com:8443",
    "http://127.0.0.1:8080",
    "http://LOCALHOST:80",
    "http://[::1]:9000",
    "http://127.0.0.1:8080/prefix/",
]
ENDPOINTS = ["emd-qwen3-8b-dev", "a b/c?d#e%f+g", "ünïcode~name", "x/../y", "./dots."]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("operation", ["InvokeEndpoint", "InvokeEndpointWithResponseStream"])
def test_the_same_headers_as_botocore(url: str, endpoint: str, operation: str, monkeypatch) -> None:
    request = serialized(
        operation,
        url,
        {
            "EndpointName": endpoint,
            "Body": b'{"a": "h\xc3\xa9"}',
            "ContentType": "application/json",
        },
    )
    assert ours(SigV4Signer("sagemaker", "us-west-2"), request, KEYS, NOW) == botocores_headers(
        request, KEYS, NOW, monkeypatch
    )


@pytest.mark.parametrize(
    "params",
    [
        {"Body": b""},
        {"Body": b"x" * 100_000, "Accept": "application/jsonlines"},
        {"Body": b"{}", "CustomAttributes": "  route=/v1/embeddings ,\t a   b  "},
        {"Body": b"{}", "TargetVariant": "v1", "InferenceId": "id with  spaces"},
        {"Body": b"{}", "ContentType": "multipart/form-data; boundary=----x"},
    ],
)
@pytest.mark.parametrize("credentials", [KEYS, SESSION], ids=["keys", "session-token"])
def test_headers_body_and_tokens_sign_as_botocore_signs_them(
    params: dict[str, Any], credentials: ReadOnlyCredentials, monkeypatch
) -> None:
    request = serialized("InvokeEndpoint", URLS[0], {"EndpointName": "emd-x", **params})
    assert ours(SigV4Signer("sagemaker", "us-west-2"), request, credentials, NOW) == (
        botocores_headers(request, credentials, NOW, monkeypatch)
    )


def test_the_cached_signing_key_follows_the_day_and_the_secret(monkeypatch) -> None:
    signer = SigV4Signer("sagemaker", "us-west-2")
    request = serialized("InvokeEndpoint", URLS[0], {"EndpointName": "emd-x", "Body": b"{}"})
    rotated = ReadOnlyCredentials(KEYS.access_key, "rotated-secret", None)
    # Across midnight, after a rotation and back: each signature as botocore's.
    for credentials, now in [
        (KEYS, NOW),
        (KEYS, NOW + timedelta(seconds=3)),
        (rotated, NOW + timedelta(seconds=3)),
        (KEYS, NOW + timedelta(seconds=3)),
    ]:
        assert ours(signer, request, credentials, now) == botocores_headers(
            request, credentials, now, monkeypatch
        )


def test_a_previous_signature_is_replaced_not_kept(monkeypatch) -> None:
    request = serialized("InvokeEndpoint", URLS[0], {"EndpointName": "emd-x", "Body": b"{}"})
    signer = SigV4Signer("sagemaker", "us-west-2")
    first = ours(signer, request, SESSION, NOW)
    again = signer.sign(request["url"], first, request["body"], KEYS, NOW + timedelta(seconds=1))
    assert "X-Amz-Security-Token" not in again
    assert again == botocores_headers(request, KEYS, NOW + timedelta(seconds=1), monkeypatch)
