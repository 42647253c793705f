from __future__ import annotations

from emd_proxy.app import create_app
from emd_proxy.auth import KeyStore
from emd_proxy.registry import Registry
from emd_proxy.settings import Settings


class _NoAws:
    """create_app builds no boto3 client when given one."""


def schema() -> dict:
    app = create_app(Settings(), registry=Registry([]), keys=KeyStore.static({"d": "k"}),
                     sagemaker=_NoAws())  # type: ignore[arg-type]  # fmt: skip
    return app.openapi()


def test_every_v1_operation_needs_a_bearer_key_and_documents_openai_errors() -> None:
    spec = schema()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
    }
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            assert "422" not in responses, path  # the app answers 400, never 422
            assert responses["400"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"
            }
            assert operation["security"] == [{"bearerAuth": []}], path
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_the_audio_upload_is_declared_as_multipart() -> None:
    body = schema()["paths"]["/v1/audio/transcriptions"]["post"]["requestBody"]
    form = body["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file", "model"]
    assert form["properties"]["file"] == {"type": "string", "format": "binary"}
