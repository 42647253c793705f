"""Chat completions: the request, as in
https://platform.openai.com/docs/api-reference/chat/create, and the answers.

The request is permissive: unknown fields are kept and passed to the engine (engine
extras such as `top_k` or `repetition_penalty`); known fields are checked so a client
gets a 400 naming the field instead of an engine error.

The answer models document what `/v1/chat/completions` sends (the route sends the
normalised chunks and their fold as they are; tests check them against these)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .base import AnswerModel, PermissiveModel
from .chat_rules import check_chat_rules

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
    # vLLM's: usage on every chunk (other engines ignore it).
    continuous_usage_stats: bool | None = None


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
    # No upper bound and -1 ("every token") as vLLM takes them; an engine that
    # refuses them says why (OpenAI's own bounds are 2 and 20).
    temperature: float | None = Field(default=None, ge=0)
    tool_choice: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    top_logprobs: int | None = Field(default=None, ge=-1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    user: str | None = None

    @model_validator(mode="after")
    def _cross_field_rules(self) -> ChatCompletionRequest:
        # Raises the 400 itself (with vLLM's wording and the `param`), not a pydantic
        # error: see chat_rules.py.
        check_chat_rules(self)
        return self

    @property
    def wants_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


# Answers: https://platform.openai.com/docs/api-reference/chat/object and
# https://platform.openai.com/docs/api-reference/chat/streaming, fields in the order
# OpenAI sends them. Engines' own extra fields pass through, so objects stay open.

# OpenAI's, and vLLM's `abort` (an engine's own reason passes as it said it).
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call", "abort"]


class TopLogprob(AnswerModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(AnswerModel):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(AnswerModel):
    content: list[TokenLogprob] | None


class CompletionUsage(AnswerModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: dict[str, int] | None = None
    completion_tokens_details: dict[str, int] | None = None


class FunctionCall(AnswerModel):
    name: str
    arguments: str = Field(description="The arguments as JSON text.")


class ToolCall(AnswerModel):
    id: str
    type: Literal["function"]
    function: FunctionCall


class ChatCompletionMessage(AnswerModel):
    role: Literal["assistant"]
    content: str | None
    refusal: str | None = None
    annotations: list[dict[str, Any]] | None = None
    tool_calls: list[ToolCall] | None = None
    # Our extension: a reasoning model's thinking, under both names clients read
    # (DeepSeek's `reasoning_content`, vLLM's `reasoning`).
    reasoning_content: str | None = None
    reasoning: str | None = None


class ChatChoice(AnswerModel):
    index: int
    message: ChatCompletionMessage
    logprobs: ChoiceLogprobs | None
    finish_reason: FinishReason
    # vLLM's (and TGI's, named by the gateway): the stop string or token id that
    # ended the answer.
    stop_reason: str | int | None = None


class ChatCompletion(AnswerModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatChoice]
    usage: CompletionUsage | None = None


class ChoiceDeltaFunctionCall(AnswerModel):
    # The name comes on a call's first fragment only; arguments arrive in fragments.
    name: str | None = None
    arguments: str | None = None


class ChoiceDeltaToolCall(AnswerModel):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: ChoiceDeltaFunctionCall


class ChoiceDelta(AnswerModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None
    # Our extension, as on the message.
    reasoning_content: str | None = None
    reasoning: str | None = None


class ChatChunkChoice(AnswerModel):
    index: int
    delta: ChoiceDelta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason | None = None
    stop_reason: str | int | None = None


class ChatCompletionChunk(AnswerModel):
    """One `data:` event of a streamed answer; the stream ends with `data: [DONE]`.
    The usage chunk (empty `choices`) comes last, only with
    `stream_options.include_usage`."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatChunkChoice]
    usage: CompletionUsage | None = None
