"""AWS WhisperX DLC (whisperx:3.8.6-cu128-amzn2023-sagemaker): /invocations takes the
same multipart form as OpenAI's /v1/audio/transcriptions and answers in the asked
response_format. Source: notes/containers.md section 5. The task (transcribe or
translate) is the container's launch setting WHISPERX_TASK, not a request field."""

from __future__ import annotations

from pydantic_core import from_json, to_json

from ..errors import UpstreamError
from ..registry import RegistryEntry
from ..sagemaker_client import UpstreamCall
from ..transcripts import verbose_json
from .adapters import AudioFile, Transcript, TranscriptionAdapter
from .multipart import multipart_call


class WhisperxTranscription(TranscriptionAdapter):
    # Its segments become one delta event each.
    stream_format = "verbose_json"
    # The DLC has no per-request task: WHISPERX_TASK (transcribe | translate) is fixed
    # when the container starts (aws/deep-learning-containers@e0ecede,
    # scripts/docker/whisperx/server.py: "task ... fixed at container launch"). An
    # endpoint started with WHISPERX_TASK=translate translates every request, and its
    # registry entry says so (feature `translate`).
    translation_refusal = None

    def build(
        self, entry: RegistryEntry, audio: AudioFile, fields: list[tuple[str, str]]
    ) -> UpstreamCall:
        return multipart_call(audio, fields)

    def build_translation(
        self, entry: RegistryEntry, audio: AudioFile, fields: list[tuple[str, str]]
    ) -> UpstreamCall:
        # The same form: the endpoint's launch task does the translating.
        return multipart_call(audio, fields)

    def parse(self, body: bytes, content_type: str, response_format: str) -> Transcript:
        if response_format != "verbose_json":
            return Transcript(body, content_type)
        # WhisperX answers with its own segments (start, end, text, words); clients
        # expect OpenAI's full segment objects.
        try:
            raw = from_json(body)
            segments = raw.get("segments") or []
            words = raw.get("words")
            duration = raw.get("duration") or (segments[-1]["end"] if segments else 0.0)
            normalised = verbose_json(
                language=str(raw.get("language") or ""),
                duration=float(duration),
                segments=segments,
                words=words,
                text=raw.get("text"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UpstreamError("The model returned an unexpected transcription.") from exc
        return Transcript(to_json(normalised), "application/json")
