"""Transcription and translation answers, as in
https://platform.openai.com/docs/api-reference/audio/json-object and
.../verbose-json-object (the request is a multipart form, parsed in the route). The
`text`, `srt` and `vtt` formats answer with plain text; a streamed transcription is
server-sent events, one delta or done event each."""

from __future__ import annotations

from typing import Literal

from pydantic import RootModel

from .base import AnswerModel


class Transcription(AnswerModel):
    text: str


class TranscriptionWord(AnswerModel):
    word: str
    start: float
    end: float


class TranscriptionSegment(AnswerModel):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class TranscriptionVerbose(AnswerModel):
    # "transcribe"; vLLM's answers, passed through as the container sends them, omit it.
    task: str | None = None
    language: str
    duration: float
    text: str
    # Only with timestamp_granularities[]=word.
    words: list[TranscriptionWord] | None = None
    segments: list[TranscriptionSegment]


class Translation(AnswerModel):
    """/v1/audio/translations with response_format json: the English text."""

    text: str


class TranslationVerbose(AnswerModel):
    language: str
    duration: float
    text: str
    segments: list[TranscriptionSegment] | None = None


# `stream: true` on /v1/audio/transcriptions: server-sent events, as openai-python's
# types/audio/transcription_text_delta_event.py and transcription_text_done_event.py.
class TranscriptTextDelta(AnswerModel):
    type: Literal["transcript.text.delta"] = "transcript.text.delta"
    delta: str


class TranscriptTextDone(AnswerModel):
    type: Literal["transcript.text.done"] = "transcript.text.done"
    text: str


class TranscriptStreamEvent(RootModel[TranscriptTextDelta | TranscriptTextDone]):
    """One `data:` event of a streamed transcription."""
