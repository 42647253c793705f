"""Legacy completions: the request, as in
https://platform.openai.com/docs/api-reference/completions/create, and the answer.

The request is permissive like the chat request: engine extras (`top_k`,
`repetition_penalty`, ...) pass through; the known fields are checked so a client gets
a 400 naming the field."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, field_validator

from .base import AnswerModel, RequestModel
from .chat import CompletionUsage, FinishReason, StreamOptions
from .limits import INT32_MAX, INT64_MAX, INT64_MIN, UINT32_MAX

Prompt = str | list[str] | list[int] | list[list[int]]


class CompletionRequest(RequestModel):
    # Fields in the order of the OpenAI reference; strict types and the engines'
    # integer limits (limits.py).
    model: str = Field(min_length=1, max_length=256)
    prompt: Prompt
    best_of: StrictInt | None = Field(default=None, ge=1, le=20)
    echo: StrictBool | None = None
    frequency_penalty: StrictFloat | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, StrictFloat] | None = None
    logprobs: StrictInt | None = Field(default=None, ge=0, le=20)
    max_tokens: StrictInt | None = Field(default=None, ge=0, le=UINT32_MAX)
    n: StrictInt | None = Field(default=None, ge=1, le=128)
    presence_penalty: StrictFloat | None = Field(default=None, ge=-2, le=2)
    seed: StrictInt | None = Field(default=None, ge=INT64_MIN, le=INT64_MAX)
    stop: str | list[str] | None = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: StrictFloat | None = Field(default=None, ge=0)  # as on chat
    top_p: StrictFloat | None = Field(default=None, ge=0, le=1)
    user: str | None = None
    top_k: StrictInt | None = Field(default=None, ge=-1, le=INT32_MAX)  # as on chat

    @field_validator("prompt")
    @classmethod
    def _not_empty(cls, value: Prompt) -> Prompt:
        if isinstance(value, list) and not value:
            raise ValueError("must not be an empty list")
        return value

    @property
    def wants_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def token_ids(self) -> bool:
        """Whether the prompt is given as token ids (one list or a list of lists)."""
        return isinstance(self.prompt, list) and not isinstance(self.prompt[0], str)


# The answer, and each streamed chunk (the same object, `finish_reason` null until the
# end), fields in the order of
# https://platform.openai.com/docs/api-reference/completions/object.


class CompletionLogprobs(AnswerModel):
    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


class CompletionChoice(AnswerModel):
    text: str
    index: int
    logprobs: CompletionLogprobs | None
    finish_reason: FinishReason | None


class TextCompletion(AnswerModel):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[CompletionChoice]
    usage: CompletionUsage | None = None
