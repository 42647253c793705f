"""Embeddings `dimensions` and token-id input end to end, with the openai SDK and
LangChain's OpenAIEmbeddings: proxy -> boto3 -> emulator -> the local TEI container
(multilingual-e5-small, and the same endpoint registered as a Matryoshka model)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import openai
import pytest
from langchain_openai import OpenAIEmbeddings
from langchain_openai.embeddings import base as langchain_embeddings

from emd.local.gateway import LocalGateway

from .conftest import E5, E5_MATRYOSHKA, KEY


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- dimensions -------------------------------------------------------------------------
def test_a_matryoshka_model_shortens_on_the_engine(client: openai.OpenAI) -> None:
    full = client.embeddings.create(model=E5_MATRYOSHKA, input="hello world")
    short = client.embeddings.create(model=E5_MATRYOSHKA, input="hello world", dimensions=64)
    vector = short.data[0].embedding  # base64 on the wire, decoded by the SDK
    assert len(vector) == 64
    assert math.isclose(float(np.linalg.norm(vector)), 1.0, rel_tol=1e-5)
    assert cosine(vector, full.data[0].embedding[:64]) == pytest.approx(1.0, abs=1e-5)
    same = client.embeddings.create(model=E5_MATRYOSHKA, input="hello world", dimensions=384)
    assert same.data[0].embedding == pytest.approx(full.data[0].embedding, abs=1e-6)


def test_dimensions_above_the_model_size_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=E5_MATRYOSHKA, input="x", dimensions=385)
    assert info.value.param == "dimensions"
    assert "dimension" in info.value.message


def test_dimensions_is_refused_before_the_model_is_called(
    gateway: LocalGateway, client: openai.OpenAI
) -> None:
    emulator = gateway.stack.emulator
    assert emulator is not None
    before = sum(emulator.stats.by_endpoint.values())
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=E5, input=["a", "b"], dimensions=128)
    assert info.value.body["message"] == (  # type: ignore[index]
        f'Model "{E5}" does not support matryoshka representation, changing output '
        "dimensions will lead to poor results."
    )
    assert sum(emulator.stats.by_endpoint.values()) == before


def test_models_list_shows_the_embedding_flags(client: openai.OpenAI) -> None:
    cards = {m.id: m.model_extra["emd"]["features"] for m in client.models.list()}  # type: ignore[index]
    assert cards[E5]["matryoshka"] is False and cards[E5]["token_ids"] is False
    assert cards[E5_MATRYOSHKA]["matryoshka"] is True


# --- LangChain ----------------------------------------------------------------------------
def langchain(gateway: LocalGateway, model: str = E5, **options: Any) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(
        model=model, base_url=gateway.base_url, api_key=KEY, max_retries=0, **options
    )


def test_langchain_embeds_text_with_the_ctx_length_check_off(
    gateway: LocalGateway, client: openai.OpenAI
) -> None:
    texts = ["How do I bake bread at home?", "A simple recipe for homemade bread."]
    embeddings = langchain(gateway, check_embedding_ctx_length=False)
    documents = embeddings.embed_documents(texts)
    query = embeddings.embed_query(texts[0])
    assert [len(d) for d in documents] == [384, 384]
    sdk = client.embeddings.create(model=E5, input=texts, encoding_format="float")
    for got, want in zip(documents, sdk.data, strict=True):
        assert got == pytest.approx(want.embedding, abs=1e-5)
    assert query == pytest.approx(documents[0], abs=1e-5)


def test_langchain_dimensions_on_a_matryoshka_model(gateway: LocalGateway) -> None:
    embeddings = langchain(
        gateway, model=E5_MATRYOSHKA, dimensions=128, check_embedding_ctx_length=False
    )
    (vector,) = embeddings.embed_documents(["hello world"])
    assert len(vector) == 128


class _FakeTiktoken:
    """tiktoken's cl100k_base file is downloaded on first use, which this offline
    machine cannot do; LangChain only calls encode_ordinary on it."""

    def encode_ordinary(self, text: str) -> list[int]:
        return [100 + ord(c) for c in text]


def test_langchain_default_sends_token_ids_and_gets_a_400_naming_the_switch(
    gateway: LocalGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _FakeTiktoken()
    monkeypatch.setattr(langchain_embeddings.tiktoken, "encoding_for_model", lambda _: fake)
    monkeypatch.setattr(langchain_embeddings.tiktoken, "get_encoding", lambda _: fake)
    embeddings = langchain(gateway)  # check_embedding_ctx_length defaults to True
    for call in (embeddings.embed_documents, lambda t: embeddings.embed_query(t[0])):
        with pytest.raises(openai.BadRequestError) as info:
            call(["hello world"])
        assert info.value.param == "input"
        assert "check_embedding_ctx_length=False" in info.value.message
