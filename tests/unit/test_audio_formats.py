"""The audio container a file's first bytes name (emd_proxy/audio_formats.py)."""

from __future__ import annotations

import pytest

from emd_proxy.audio_formats import sniff


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"RIFF\x24\x08\x00\x00WAVEfmt ", "wav"),
        (b"fLaC\x00\x00\x00\x22", "flac"),
        (b"OggS\x00\x02", "ogg"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", "webm"),
        (b"\x00\x00\x00\x20ftypM4A ", "mp4"),
        (b"\x00\x00\x00\x18ftypmp42", "mp4"),
        (b"ID3\x04\x00\x00", "mp3"),
        (b"\xff\xfb\x90\x64", "mpeg"),  # an MPEG-1 layer 3 frame without a tag
        (b"\xff\xf1\x50\x80", "mpeg"),  # ADTS AAC
        (b"this is text", None),
        (b"RIFF\x00\x00\x00\x00AVI ", None),  # RIFF, but video
        (b"%PDF-1.7", None),
        (b"\xff", None),
        (b"", None),
    ],
)
def test_sniff(head: bytes, expected: str | None) -> None:
    assert sniff(head) == expected


def test_the_speech_sample_is_wav() -> None:
    from pathlib import Path

    sample = Path(__file__).parents[1] / "data"
    wavs = list(sample.rglob("*.wav")) if sample.exists() else []
    for wav in wavs:
        assert sniff(wav.read_bytes()[:16]) == "wav", wav
