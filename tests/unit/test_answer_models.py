"""The answer models /openapi.json documents match what the code really sends: answers
from the real code paths (the routes in-process on a fake SageMaker, the chunk
normaliser and folds, the transcript renderer) validate strictly against their
declared model, and nothing they carry is missing from it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from pydantic_core import from_json, to_json

from emd_proxy.app import create_app
from emd_proxy.auth import KeyStore
from emd_proxy.chunks import ChunkNormalizer, CompletionBuilder, StreamFixer
from emd_proxy.registry import Features, Registry, RegistryEntry
from emd_proxy.routes.models import model_card
from emd_proxy.sagemaker_client import UpstreamResponse
from emd_proxy.schemas.audio import TranscriptionVerbose
from emd_proxy.schemas.chat import ChatCompletion, ChatCompletionChunk
from emd_proxy.schemas.completions import TextCompletion
from emd_proxy.schemas.embeddings import EmbeddingList
from emd_proxy.schemas.errors import ErrorResponse
from emd_proxy.schemas.models import Model, ModelList
from emd_proxy.schemas.rerank import RerankResponse
from emd_proxy.settings import Settings
from emd_proxy.shapes.chat import ChatEvents
from emd_proxy.shapes.completions import CompletionEvents, TextChunks, TextCompletionBuilder
from emd_proxy.transcripts import verbose_json

KEY = "sk-test"
CHAT = RegistryEntry(
    id="Qwen3-8B/dev",
    model="Qwen3-8B",
    tag="dev",
    endpoint="emd-qwen3-8b-dev",
    engine="vllm",
    families=["chat"],
    features=Features(tools=True, reasoning=True, token_ids=False),  # type: ignore[call-arg]
    created=1764115200,
    metadata={"context": 32768},
)
E5 = RegistryEntry(
    id="e5/dev", model="e5", tag="dev", endpoint="emd-e5-dev", engine="tei",
    families=["embeddings", "rerank"],
)  # fmt: skip


def events(stream: bytes) -> list[dict[str, Any]]:
    """The JSON of each `data:` event a renderer wrote."""
    return [from_json(line.removeprefix(b"data: ")) for line in stream.split(b"\n\n") if line]


def conforms(model: type[BaseModel], answer: dict[str, Any]) -> None:
    """Valid in strict mode, and nothing the answer carries goes undeclared (an
    unknown field would be dropped, and the dump would differ)."""
    parsed = model.model_validate(answer, strict=True)
    assert parsed.model_dump(mode="json", exclude_unset=True) == answer


class FakeTei:
    """TEI's answers: vectors for `inputs`, scores for `query` + `texts`."""

    async def invoke(self, endpoint: str, body: bytes, **_: Any) -> UpstreamResponse:
        request = from_json(body)
        if "query" in request:
            scores = [{"index": i, "score": 1 / (i + 1)} for i in range(len(request["texts"]))]
            return UpstreamResponse(to_json(scores), "application/json")
        vectors = [[0.25, -0.5, 0.125] for _ in request["inputs"]]
        return UpstreamResponse(to_json(vectors), "application/json")

    async def aclose(self) -> None:
        pass


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = create_app(Settings(), registry=Registry([CHAT, E5]), keys=KeyStore.static({"d": KEY}),
                     sagemaker=FakeTei())  # type: ignore[arg-type]  # fmt: skip
    return TestClient(app, headers={"Authorization": f"Bearer {KEY}"})


def test_model_list_and_card(client: TestClient) -> None:
    listed = client.get("/v1/models")
    assert listed.status_code == 200
    conforms(ModelList, listed.json())
    card = client.get("/v1/models/Qwen3-8B/dev").json()
    conforms(Model, card)
    assert card == model_card(CHAT)
    assert card["emd"]["features"]["token_ids"] is False  # a catalog extra, shown too


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_embeddings(client: TestClient, encoding_format: str) -> None:
    answer = client.post(
        "/v1/embeddings",
        json={"model": "e5/dev", "input": ["a", "b"], "encoding_format": encoding_format},
    )
    assert answer.status_code == 200
    conforms(EmbeddingList, answer.json())


@pytest.mark.parametrize("return_documents", [True, False])
def test_rerank(client: TestClient, return_documents: bool) -> None:
    answer = client.post(
        "/v1/rerank",
        json={"model": "e5/dev", "query": "q", "documents": ["x", {"text": "y"}],
              "return_documents": return_documents, "top_n": 1},
    )  # fmt: skip
    assert answer.status_code == 200
    conforms(RerankResponse, answer.json())


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        ({"model": "nope/dev", "input": "x"}, 404),
        ({"model": "e5/dev", "input": ""}, 400),
    ],
)
def test_errors(client: TestClient, request_: dict[str, Any], status: int) -> None:
    answer = client.post("/v1/embeddings", json=request_)
    assert answer.status_code == status
    conforms(ErrorResponse, answer.json())


def vllm_stream() -> list[dict[str, Any]]:
    """An engine stream with everything a chat answer can carry: reasoning, text with
    logprobs, a tool call in fragments, a finish reason, usage in its own chunk."""
    top = {"token": "Hi", "logprob": -0.1, "bytes": None}
    logprobs = {"content": [{**top, "bytes": [72, 105], "top_logprobs": [top]}]}
    call = {"index": 0, "id": "chatcmpl-tool-1a2b3c", "type": "function"}
    chunks: list[dict[str, Any]] = [
        {"delta": {"role": "assistant", "content": ""}},
        {"delta": {"reasoning": "think"}},
        {"delta": {"content": "Hi"}, "logprobs": logprobs},
        {"delta": {"tool_calls": [{**call, "function": {"name": "f", "arguments": '{"a"'}}]}},
        {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}},
        {"delta": {}, "finish_reason": "tool_calls"},
    ]
    out = [
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 5, "model": "/opt/ml",
         "choices": [{"index": 0, "logprobs": None, "finish_reason": None, **c}]}
        for c in chunks
    ]  # fmt: skip
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
             "prompt_tokens_details": {"cached_tokens": 0}}  # fmt: skip
    return [*out, {"id": "chatcmpl-1", "created": 5, "choices": [], "usage": usage}]


def test_chat_chunks_and_the_folded_completion() -> None:
    normalise = ChunkNormalizer(CHAT.id)
    chunks = [normalise(c) for c in vllm_stream()]
    chunks = [c for c in chunks if c["choices"]] + [normalise.usage_chunk()]
    builder = CompletionBuilder()
    for chunk in chunks:
        builder.add(chunk)
    sent = events(ChatEvents(include_usage=True).batch(chunks))
    assert len(sent) == len(chunks)
    for chunk in sent:
        conforms(ChatCompletionChunk, chunk)
    completion = builder.result(CHAT.id)
    conforms(ChatCompletion, completion)
    message = completion["choices"][0]["message"]
    assert message["tool_calls"] and message["reasoning_content"] == "think"
    assert completion["usage"]["total_tokens"] == 7


def test_an_empty_fold_is_a_valid_completion() -> None:
    conforms(ChatCompletion, CompletionBuilder().result(CHAT.id))


def test_legacy_completion_chunks_and_the_folded_completion() -> None:
    fixer = TextChunks(StreamFixer())
    normalise = ChunkNormalizer(CHAT.id, "cmpl-")
    logprobs = {"tokens": ["Hi"], "token_logprobs": [-0.1], "top_logprobs": [{"Hi": -0.1}],
                "text_offset": [0]}  # fmt: skip
    choices = [
        {"index": 0, "text": "Hi", "logprobs": logprobs},
        {"index": 0, "text": "", "finish_reason": "length"},
    ]
    engine = [{"id": "cmpl-1", "created": 5, "choices": [choice]} for choice in choices]
    chunks = [normalise(chunk) for raw in engine for chunk in fixer.fix(raw)]
    chunks.append(normalise.usage_chunk())
    builder = TextCompletionBuilder()
    for chunk in chunks:
        builder.add(chunk)
    for sent in events(CompletionEvents(include_usage=True).batch(chunks)):
        conforms(TextCompletion, sent)
    conforms(TextCompletion, builder.result(CHAT.id))


@pytest.mark.parametrize("words", [None, [{"word": " hi", "start": 0.0, "end": 0.5}]])
def test_verbose_transcription(words: list[dict[str, Any]] | None) -> None:
    segments = [{"start": 0.0, "end": 1.24, "text": " hi there", "seek": 0}]
    conforms(
        TranscriptionVerbose,
        verbose_json(language="en", duration=1.5, segments=segments, words=words),
    )
