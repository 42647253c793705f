"""AWS WhisperX DLC (whisperx:3.8.6-cu128-amzn2023-sagemaker): /invocations takes the
same multipart form as OpenAI's /v1/audio/transcriptions and answers in the asked
response_format. Source: notes/containers.md section 5."""

from __future__ import annotations

from ..registry import RegistryEntry
from .families import AudioFile, TranscriptionAdapter, UpstreamCall
from .multipart import multipart_call


class WhisperxTranscription(TranscriptionAdapter):
    def build(
        self, entry: RegistryEntry, audio: AudioFile, fields: list[tuple[str, str]]
    ) -> UpstreamCall:
        return multipart_call(audio, fields)
