"""Chat completion request, as in https://platform.openai.com/docs/api-reference/chat/create.

Permissive: unknown fields are kept and passed to the engine (engine extras such as
`top_k` or `repetition_penalty`); known fields are checked so a client gets a 400
naming the field instead of an engine error."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import PermissiveModel

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ContentPart(PermissiveModel):
    type: str = Field(min_length=1)


class ChatMessage(PermissiveModel):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(PermissiveModel):
    include_usage: bool | None = None


class ChatCompletionRequest(PermissiveModel):
    # Fields in the order of the OpenAI reference.
    messages: list[ChatMessage] = Field(min_length=1)
    model: str = Field(min_length=1, max_length=256)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    max_completion_tokens: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=128)
    parallel_tool_calls: bool | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    reasoning_effort: str | None = None
    response_format: dict[str, Any] | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    tool_choice: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    top_p: float | None = Field(default=None, ge=0, le=1)
    user: str | None = None

    @property
    def wants_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)
