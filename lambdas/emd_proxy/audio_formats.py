"""Which audio container a file is, from its first bytes: the formats OpenAI's
transcription API takes (flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg, wav, webm).

The gateway refuses anything else before calling the model: a real WhisperX endpoint
answers a file ffmpeg cannot read with a bare 500, which a client would see as the
model failing (502) instead of its own mistake (400)."""

from __future__ import annotations

SUPPORTED = "flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg, wav, webm"


def sniff(data: bytes) -> str | None:
    """The container's name, or None when the bytes start as none of them."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:4] == b"\x1a\x45\xdf\xa3":  # EBML: WebM / Matroska
        return "webm"
    if data[4:8] == b"ftyp":  # ISO base media: mp4, m4a, 3gp
        return "mp4"
    if data[:3] == b"ID3":  # mp3 with an ID3v2 tag
        return "mp3"
    # An MPEG audio frame (mp3, mpga) or ADTS AAC: 11 sync bits set.
    if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        return "mpeg"
    return None
