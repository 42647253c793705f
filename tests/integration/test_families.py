"""Embeddings, rerank and transcription end to end: openai SDK (or httpx for rerank,
which the SDK lacks) -> proxy -> boto3 -> emulator -> real small models."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import av
import httpx
import numpy as np
import openai
import pytest

from emd.local.gateway import LocalGateway

from .conftest import E5, ECHO, KEY, WHISPER, endpoint_of

SPEECH = Path(__file__).parent.parent / "data" / "speech.wav"


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- embeddings ------------------------------------------------------------------------
def test_embeddings_float_and_base64_agree(client: openai.OpenAI) -> None:
    texts = ["The cat sat on the mat.", "Stock markets fell sharply today."]
    floats = client.embeddings.create(model=E5, input=texts, encoding_format="float")
    # The SDK asks for base64 by default and decodes it itself.
    decoded = client.embeddings.create(model=E5, input=texts)
    assert floats.model == E5
    assert [d.index for d in floats.data] == [0, 1]
    assert len(floats.data[0].embedding) == 384
    for a, b in zip(floats.data, decoded.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)
    assert floats.usage.prompt_tokens > 0
    assert floats.usage.total_tokens == floats.usage.prompt_tokens


def test_related_sentences_are_closer_than_unrelated(client: openai.OpenAI) -> None:
    result = client.embeddings.create(
        model=E5,
        input=[
            "How do I bake bread at home?",
            "A simple recipe for homemade bread.",
            "The rocket reached orbit after launch.",
        ],
    )
    query, related, unrelated = (d.embedding for d in result.data)
    assert cosine(query, related) > cosine(query, unrelated)


def test_dimensions_is_vllms_400_on_a_model_without_matryoshka(client: openai.OpenAI) -> None:
    # multilingual-e5-small was not trained for shortened vectors: no silent cut.
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=E5, input="hello world", dimensions=64)
    assert info.value.param == "dimensions"
    assert "does not support matryoshka representation" in info.value.message


def test_large_inputs_are_batched_in_order(gateway: LocalGateway, client: openai.OpenAI) -> None:
    emulator = gateway.stack.emulator
    assert emulator is not None
    endpoint = endpoint_of(gateway, E5)
    texts = [f"sentence number {i} about topic {i % 7}" for i in range(70)]
    before = emulator.stats.by_endpoint.get(endpoint, 0)
    batched = client.embeddings.create(model=E5, input=texts, encoding_format="float")
    assert emulator.stats.by_endpoint[endpoint] - before == 3  # 32 + 32 + 6
    assert [d.index for d in batched.data] == list(range(70))
    single = client.embeddings.create(model=E5, input=texts[40], encoding_format="float")
    assert batched.data[40].embedding == pytest.approx(single.data[0].embedding, abs=1e-6)


def test_token_ids_get_a_clear_400_where_the_engine_cannot_take_them(
    client: openai.OpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=E5, input=[[101, 2023, 102]])
    assert "token ids" in info.value.message
    assert "check_embedding_ctx_length=False" in info.value.message
    assert info.value.param == "input"


def test_embeddings_on_a_chat_model_names_its_families(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=ECHO, input="x")
    assert "chat" in info.value.message


@pytest.mark.parametrize("bad", [[], "", [""]])
def test_empty_input_is_400(client: openai.OpenAI, bad: object) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=E5, input=bad)  # type: ignore[arg-type]
    assert info.value.param and info.value.param.startswith("input")


# --- rerank ---------------------------------------------------------------------------
DOCUMENTS = [
    "Berlin is the capital of Germany.",
    "Paris is the capital of France.",
    "Bananas are rich in potassium.",
    {"text": "The Eiffel Tower is in Paris, France."},
]


def test_rerank_ranks_the_relevant_document_first(http: httpx.Client) -> None:
    response = http.post(
        "/rerank",
        json={"model": E5, "query": "What is the capital of France?", "documents": DOCUMENTS},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == E5
    assert body["id"].startswith("rerank-")
    results = body["results"]
    assert results[0]["index"] == 1
    assert results[0]["document"] == {"text": "Paris is the capital of France."}
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert sorted(r["index"] for r in results) == [0, 1, 2, 3]
    assert body["usage"]["total_tokens"] > 0


@pytest.mark.parametrize("path", ["/v2/rerank", "/rerank"])
def test_rerank_aliases_answer_the_same_and_need_a_key(
    gateway: LocalGateway, http: httpx.Client, path: str
) -> None:
    """Cohere v2 clients call /v2/rerank, some Jina/TEI clients /rerank."""
    body = {"model": E5, "query": "What is the capital of France?", "documents": DOCUMENTS}
    root = gateway.base_url.removesuffix("/v1")
    alias = httpx.post(root + path, json=body, headers=http.headers, timeout=30)
    assert alias.status_code == 200, alias.text
    v1 = http.post("/rerank", json=body).json()
    assert [r["index"] for r in alias.json()["results"]] == [r["index"] for r in v1["results"]]
    anonymous = httpx.post(root + path, json=body, timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "invalid_api_key"


def test_rerank_top_n_and_return_documents(http: httpx.Client) -> None:
    response = http.post(
        "/rerank",
        json={
            "model": E5,
            "query": "capital of France",
            "documents": DOCUMENTS,
            "top_n": 2,
            "return_documents": False,
        },
    )
    results = response.json()["results"]
    assert len(results) == 2
    assert all("document" not in r for r in results)


def test_rerank_scores_more_documents_than_one_batch(http: httpx.Client) -> None:
    documents = [f"filler document {i} about gardening" for i in range(40)]
    documents[33] = "Paris is the capital of France."
    response = http.post(
        "/rerank", json={"model": E5, "query": "capital of France", "documents": documents}
    )
    results = response.json()["results"]
    assert len(results) == 40
    assert results[0]["index"] == 33


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"query": "q", "documents": []}, "documents"),
        ({"documents": ["a"]}, "query"),
        ({"query": "", "documents": ["a"]}, "query"),
        ({"query": "q", "documents": ["a"] * 1001}, "documents"),
        ({"query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
    ],
)
def test_rerank_validation(http: httpx.Client, body: dict, param: str) -> None:
    response = http.post("/rerank", json={"model": E5, **body})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


# --- audio ----------------------------------------------------------------------------
def heard(text: str) -> bool:
    """tiny.en mishears a word or two of the clip; most of it must come through."""
    spoken = {"hello", "world", "test", "gateway"}
    return len(spoken & set(re.findall(r"[a-z]+", text.lower()))) >= 3


def transcribe(client: openai.OpenAI, data: bytes, name: str = "speech.wav", **kw: object):
    return client.audio.transcriptions.create(model=WHISPER, file=(name, data), **kw)


def test_transcription_returns_the_spoken_words(client: openai.OpenAI) -> None:
    result = transcribe(client, SPEECH.read_bytes())
    assert heard(result.text)


def test_verbose_json_has_segments(client: openai.OpenAI) -> None:
    result = transcribe(client, SPEECH.read_bytes(), response_format="verbose_json", language="en")
    assert result.segments
    first = result.segments[0]
    assert 0 <= first.start < first.end <= result.duration + 0.5
    assert heard(result.text)
    # WhisperX sends its own segments (text, times, avg_logprob); clients get OpenAI's.
    openai_fields = {"id", "seek", "start", "end", "text", "tokens", "temperature"}
    openai_fields |= {"avg_logprob", "compression_ratio", "no_speech_prob"}
    assert all(set(s.model_dump()) == openai_fields for s in result.segments)
    assert [s.id for s in result.segments] == list(range(len(result.segments)))


def test_srt_and_vtt_are_parsable(client: openai.OpenAI) -> None:
    srt = transcribe(client, SPEECH.read_bytes(), response_format="srt")
    assert isinstance(srt, str)
    assert re.search(r"^1\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n\S", srt, re.M)
    vtt = transcribe(client, SPEECH.read_bytes(), response_format="vtt")
    assert vtt.startswith("WEBVTT")
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}", vtt)
    text = transcribe(client, SPEECH.read_bytes(), response_format="text")
    assert heard(text)


def _encode(fmt: str, codec: str, suffix: str) -> tuple[str, bytes]:
    """SPEECH re-encoded with PyAV (no system ffmpeg)."""
    out = io.BytesIO()
    with av.open(str(SPEECH)) as source, av.open(out, "w", format=fmt) as target:
        stream = target.add_stream(codec, rate=48000 if codec == "libopus" else 16000)
        for frame in source.decode(audio=0):
            frame.pts = None
            for packet in stream.encode(frame):
                target.mux(packet)
        for packet in stream.encode(None):
            target.mux(packet)
    return f"speech.{suffix}", out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "codec", "suffix"),
    [
        ("mp3", "mp3", "mp3"),
        ("flac", "flac", "flac"),
        ("ogg", "libopus", "ogg"),
        ("webm", "libopus", "webm"),
        ("ipod", "aac", "m4a"),
    ],
)
def test_audio_formats_decode_without_ffmpeg(
    client: openai.OpenAI, fmt: str, codec: str, suffix: str
) -> None:
    name, data = _encode(fmt, codec, suffix)
    assert heard(transcribe(client, data, name).text)


def test_audio_over_the_limit_is_413(gateway: LocalGateway) -> None:
    too_big = b"\0" * (4 * 1024 * 1024 + 10)
    response = httpx.post(
        f"{gateway.base_url}/audio/transcriptions",
        headers={"Authorization": f"Bearer {KEY}"},
        files={"file": ("big.wav", too_big, "audio/wav")},
        data={"model": WHISPER},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_garbage_audio_and_bad_forms_are_400(client: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.BadRequestError):
        transcribe(client, b"this is not audio at all", "x.wav")
    with pytest.raises(openai.BadRequestError) as info:
        transcribe(client, SPEECH.read_bytes(), response_format="docx")
    assert info.value.param == "response_format"
    no_file = http.post("/audio/transcriptions", data={"model": WHISPER}, files={"x": b"1"})
    assert no_file.status_code == 400
    assert no_file.json()["error"]["param"] == "file"
    not_multipart = http.post("/audio/transcriptions", json={"model": WHISPER})
    assert not_multipart.status_code == 400


def test_models_list_shows_families_and_local_rerank_note(client: openai.OpenAI) -> None:
    cards = {m.id: m for m in client.models.list()}
    e5 = cards[E5].model_extra["emd"]  # type: ignore[index]
    assert e5["families"] == ["embeddings", "rerank", "invocations"]
    assert e5["engine"] == "tei"
    assert "cross-encoder" in json.dumps(e5["metadata"])
    assert cards[WHISPER].model_extra["emd"]["families"] == ["audio"]  # type: ignore[index]
    # The routes a client may call with each model, from the family table.
    assert e5["apis"] == [
        "/v1/embeddings", "/v1/rerank", "/v2/rerank", "/rerank", "/v1/invocations"
    ]  # fmt: skip
    assert cards[WHISPER].model_extra["emd"]["apis"] == [  # type: ignore[index]
        "/v1/audio/transcriptions", "/v1/audio/translations"
    ]  # fmt: skip
    chat = cards[ECHO].model_extra["emd"]["apis"]  # type: ignore[index]
    for path in ("/v1/chat/completions", "/v1/messages", "/v1/completions", "/v1/responses"):
        assert path in chat
    assert "/v1/embeddings" not in chat
