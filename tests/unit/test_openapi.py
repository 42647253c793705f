"""/openapi.json as the API behaves, generated from the routes' declarations
(emd_proxy/openapi.py): typed answers, OpenAI-shaped errors and never FastAPI's 422
(the app answers 400), a Bearer key on every /v1 operation, /health left out."""

from __future__ import annotations

import json
import re
from typing import Any

from emd_proxy.app import create_app
from emd_proxy.auth import KeyStore
from emd_proxy.registry import Registry
from emd_proxy.settings import Settings

ERROR_STATUSES = ("400", "401", "404", "413", "429", "502", "503", "504", "default")
ERROR = {"$ref": "#/components/schemas/ErrorResponse"}
# The model of each operation's 200 (JSON) and, for a stream, of each `data:` event.
ANSWERS = {
    ("get", "/v1/models"): "ModelList",
    ("get", "/v1/models/{model_id}"): "Model",
    ("post", "/v1/chat/completions"): "ChatCompletion",
    ("post", "/v1/completions"): "TextCompletion",
    ("post", "/v1/embeddings"): "EmbeddingList",
    ("post", "/v1/rerank"): "RerankResponse",
}
STREAMS = {
    ("post", "/v1/chat/completions"): "ChatCompletionChunk",
    ("post", "/v1/completions"): "TextCompletion",
}
# Operations whose 200 no model of ours describes.
UNTYPED = {
    ("post", "/v1/invocations"),  # the container's own answer
    ("get", "/v1/responses/{response_id}"),  # always a 400: the gateway stores nothing
}


class _NoAws:
    """create_app builds no boto3 client when given one."""


def schema() -> dict:
    app = create_app(Settings(), registry=Registry([]), keys=KeyStore.static({"d": "k"}),
                     sagemaker=_NoAws())  # type: ignore[arg-type]  # fmt: skip
    return app.openapi()


def operations(spec: dict) -> list[tuple[str, str, dict]]:
    return [
        (method, path, operation)
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
    ]


def refs(node: Any) -> list[str]:
    """The component names a schema refers to, at any depth."""
    return re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(node))


def test_every_v1_operation_needs_a_bearer_key_and_documents_openai_errors() -> None:
    spec = schema()
    assert spec["components"]["securitySchemes"] == {
        "bearerAuth": {"type": "http", "scheme": "bearer"}
    }
    assert {path for _, path, _ in operations(spec)} >= {"/v1/models", "/v1/chat/completions"}
    assert "/health" not in spec["paths"]
    for method, path, operation in operations(spec):
        assert path.startswith("/v1/"), path
        assert operation["security"] == [{"bearerAuth": []}], path
        responses = operation["responses"]
        assert "422" not in responses, path  # the app answers 400, never 422
        if path.startswith("/v1/messages"):
            continue  # Anthropic's own error shape (DESIGN.md)
        for status in ERROR_STATUSES:
            assert responses[status]["content"]["application/json"]["schema"] == ERROR, (
                method,
                path,
                status,
            )
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert schemas["ErrorResponse"]["required"] == ["error"]
    assert schemas["ErrorInfo"]["required"] == ["message", "type", "param", "code"]


def test_answers_are_documented_by_their_models() -> None:
    spec = schema()
    for method, path, operation in operations(spec):
        if (method, path) in UNTYPED:
            continue
        ok = operation["responses"]["200"]["content"]
        assert refs(ok.get("application/json")), (method, path)
    for (method, path), model in ANSWERS.items():
        ok = spec["paths"][path][method]["responses"]["200"]["content"]
        assert ok["application/json"]["schema"]["$ref"] == f"#/components/schemas/{model}"
    for (method, path), model in STREAMS.items():
        ok = spec["paths"][path][method]["responses"]["200"]["content"]
        assert ok["text/event-stream"]["schema"] == {"$ref": f"#/components/schemas/{model}"}
    audio = spec["paths"]["/v1/audio/transcriptions"]["post"]["responses"]["200"]["content"]
    assert refs(audio["application/json"]) == ["Transcription", "TranscriptionVerbose"]
    assert audio["text/plain"]["schema"] == {"type": "string"}


def test_object_is_pinned_and_our_extensions_are_documented() -> None:
    schemas = schema()["components"]["schemas"]
    pinned = {
        "ModelList": "list",
        "Model": "model",
        "ChatCompletion": "chat.completion",
        "ChatCompletionChunk": "chat.completion.chunk",
        "EmbeddingList": "list",
        "Embedding": "embedding",
        "TextCompletion": "text_completion",
    }
    for name, value in pinned.items():
        assert schemas[name]["properties"]["object"]["const"] == value, name
        assert "object" in schemas[name]["required"], name
    assert refs(schemas["Model"]["properties"]["emd"]) == ["ModelDetails"]
    assert "reasoning_content" in schemas["ChoiceDelta"]["properties"]


def test_every_reference_resolves() -> None:
    """The stream models come from openapi.add_components, not from FastAPI."""
    spec = schema()
    assert set(refs(spec)) <= set(spec["components"]["schemas"])
    assert "ChatChunkChoice" in spec["components"]["schemas"]


def test_the_audio_upload_is_declared_as_multipart() -> None:
    body = schema()["paths"]["/v1/audio/transcriptions"]["post"]["requestBody"]
    form = body["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file", "model"]
    assert form["properties"]["file"] == {"type": "string", "format": "binary"}
