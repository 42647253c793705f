"""Transcription answers, as in https://platform.openai.com/docs/api-reference/audio/json-object
and .../verbose-json-object (the request is a multipart form, parsed in the route). The
`text`, `srt` and `vtt` formats answer with plain text."""

from __future__ import annotations

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
