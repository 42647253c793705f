from __future__ import annotations

import base64
import json
import math
import struct

import pytest

from emd_proxy.engines import adapter
from emd_proxy.engines.adapters import AudioFile
from emd_proxy.engines.hf_asr import audio_format
from emd_proxy.errors import InvalidRequestError, UpstreamError
from emd_proxy.registry import RegistryEntry
from emd_proxy.vectors import shorten, to_base64


def entry(engine: str, families: list[str]) -> RegistryEntry:
    return RegistryEntry(
        id=f"m-{engine}/dev",
        model=f"m-{engine}",
        tag="dev",
        endpoint="emd-m-dev",
        engine=engine,
        families=families,  # type: ignore[arg-type]
    )


def test_tei_embeddings_body_and_parse() -> None:
    tei = adapter(entry("tei", ["embeddings"]), "embeddings")
    call = tei.build(["a", "b"], None, {"truncate": True, "junk": 1})
    assert json.loads(call.body) == {"inputs": ["a", "b"], "truncate": True}
    batch = tei.parse(b"[[0.1, 0.2], [0.3, 0.4]]", 2)
    assert batch.vectors == [[0.1, 0.2], [0.3, 0.4]]
    assert batch.prompt_tokens is None
    for garbage in (b"{}", b"[[0.1]]", b"not json", b"[1, 2]"):
        with pytest.raises(UpstreamError):
            tei.parse(garbage, 2)


def test_tei_rerank_body_and_parse() -> None:
    tei = adapter(entry("tei", ["rerank"]), "rerank")
    call = tei.build("q", ["x", "y"], {"raw_scores": True})
    assert json.loads(call.body) == {
        "query": "q",
        "texts": ["x", "y"],
        "return_text": False,
        "raw_scores": True,
    }
    scores, tokens = tei.parse(b'[{"index": 1, "score": 0.9}, {"index": 0, "score": 0.1}]')
    assert [(s.index, s.score) for s in scores] == [(1, 0.9), (0, 0.1)]
    assert tokens is None
    with pytest.raises(UpstreamError):
        tei.parse(b'[{"idx": 1}]')


def test_vllm_embeddings_route_and_usage() -> None:
    vllm = adapter(entry("vllm", ["embeddings"]), "embeddings")
    call = vllm.build([[1, 2, 3]], 64, {})
    assert call.custom_attributes == "route=/v1/embeddings"
    assert json.loads(call.body) == {
        "input": [[1, 2, 3]],
        "encoding_format": "float",
        "dimensions": 64,
    }
    body = {
        "data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}],
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
    batch = vllm.parse(json.dumps(body).encode(), 2)
    assert batch.vectors == [[1.0], [2.0]]
    assert batch.prompt_tokens == 7


def test_vllm_transcription_routes_by_custom_attributes() -> None:
    vllm = adapter(entry("vllm", ["audio"]), "audio")
    audio = AudioFile(b"RIFF0000WAVE", "a.wav", "audio/wav")
    call = vllm.build(entry("vllm", ["audio"]), audio, [("language", "en")])
    assert call.custom_attributes == "route=/v1/audio/transcriptions"
    assert call.content_type.startswith("multipart/form-data; boundary=")
    assert b'name="language"' in call.body
    assert b'filename="a.wav"' in call.body


@pytest.mark.parametrize(
    ("head", "name", "kind"),
    [
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "x", "wav"),
        (b"fLaC\x00\x00\x00\x22", "x", "flac"),
        (b"OggS\x00\x02", "x", "ogg"),
        (b"ID3\x04\x00", "x", "mp3"),
        (b"\x1a\x45\xdf\xa3\x01", "x", "webm"),
        (b"\x00\x00\x00\x20ftypM4A ", "x", "m4a"),
        (b"????", "clip.MP3", "mp3"),
    ],
)
def test_audio_format_sniffing(head: bytes, name: str, kind: str) -> None:
    assert audio_format(AudioFile(head, name, "application/octet-stream")) == kind


def test_hf_asr_sends_the_exact_content_type_and_refuses_what_it_cannot_decode() -> None:
    model = entry("hf_asr", ["audio"])
    hf = adapter(model, "audio")
    call = hf.build(model, AudioFile(b"RIFF\x00\x00\x00\x00WAVE", "a.wav", "audio/wav"), [])
    assert call.content_type == "audio/wave"
    with pytest.raises(InvalidRequestError) as info:
        hf.build(model, AudioFile(b"\x1a\x45\xdf\xa3", "a.webm", "audio/webm"), [])
    assert info.value.param == "file"
    assert "srt" not in hf.response_formats
    assert hf.parse(b'{"text": "hi"}', "application/json", "text").body == b"hi\n"


def test_wrong_family_engine_is_a_clear_400() -> None:
    with pytest.raises(InvalidRequestError, match="no rerank adapter"):
        adapter(entry("whisperx", ["rerank"]), "rerank")


def test_shorten_renormalises_and_checks_the_size() -> None:
    short = shorten([3.0, 4.0, 12.0], 2)
    assert short == pytest.approx([0.6, 0.8])
    assert math.isclose(sum(v * v for v in short), 1.0)
    with pytest.raises(InvalidRequestError):
        shorten([1.0], 2)


def test_base64_is_little_endian_float32() -> None:
    encoded = to_base64([1.0, -2.5])
    assert struct.unpack("<2f", base64.b64decode(encoded)) == (1.0, -2.5)
