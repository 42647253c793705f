"""Hugging Face PyTorch inference DLC with HF_TASK=automatic-speech-recognition: the
raw audio is the body, accepted only with these exact content types, and the answer is
the pipeline's `{"text": ...}` (no segments, no parameters with a raw body). Source:
notes/containers.md section 5 (sagemaker-huggingface-inference-toolkit content_types.py)."""

from __future__ import annotations

from pydantic_core import from_json, to_json

from ..errors import InvalidRequestError, UpstreamError
from ..registry import RegistryEntry
from ..sagemaker_client import UpstreamCall
from .adapters import AudioFile, Transcript, TranscriptionAdapter

# Upload format -> the one content type the toolkit's decoder accepts for it.
CONTENT_TYPES = {
    "wav": "audio/wave",
    "flac": "audio/x-flac",
    "mp3": "audio/mpeg",
    "mpeg": "audio/mpeg",
    "mpga": "audio/mpeg",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "opus": "audio/ogg",
}


def audio_format(audio: AudioFile) -> str:
    """The upload's format from its leading bytes, else its file extension."""
    head = audio.data[:12]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3" or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "mp3"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[4:8] == b"ftyp":
        return "m4a"
    return audio.filename.rsplit(".", 1)[-1].lower() if "." in audio.filename else "unknown"


class HfAsrTranscription(TranscriptionAdapter):
    response_formats = frozenset({"json", "text"})
    translation_refusal = (
        "the Hugging Face inference toolkit takes the raw audio with no parameters, so "
        "it cannot be asked to translate"
    )

    def build(
        self, entry: RegistryEntry, audio: AudioFile, fields: list[tuple[str, str]]
    ) -> UpstreamCall:
        kind = audio_format(audio)
        content_type = CONTENT_TYPES.get(kind)
        if content_type is None:
            raise InvalidRequestError(
                f"The model `{entry.id}` cannot decode {kind} audio; send wav, flac, mp3 or ogg.",
                param="file",
            )
        return UpstreamCall(audio.data, content_type, accept="application/json")

    def parse(self, body: bytes, content_type: str, response_format: str) -> Transcript:
        try:
            text = from_json(body)["text"]
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError("The model returned an unexpected transcription.") from exc
        if response_format == "text":
            return Transcript(f"{text}\n".encode(), "text/plain; charset=utf-8")
        return Transcript(to_json({"text": text}), "application/json")
