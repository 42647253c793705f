"""Chat completions: the request, as in
https://platform.openai.com/docs/api-reference/chat/create, and the answers.

The request is permissive: unknown fields are kept and passed to the engine (engine
extras such as `top_k` or `repetition_penalty`); known fields are checked so a client
gets a 400 naming the field instead of an engine error.

The answer models document what `/v1/chat/completions` sends (the route sends the
normalised chunks and their fold as they are; tests check them against these)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, model_validator

from .base import AnswerModel, PermissiveModel, RequestModel
from .chat_rules import check_chat_rules
from .limits import INT32_MAX, INT64_MAX, INT64_MIN, UINT32_MAX

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
    include_usage: StrictBool | None = None
    # vLLM's: usage on every chunk (other engines ignore it).
    continuous_usage_stats: StrictBool | None = None


class ChatCompletionRequest(RequestModel):
    # Fields in the order of the OpenAI reference; strict types and the engines'
    # integer limits (limits.py).
    messages: list[ChatMessage] = Field(min_length=1)
    model: str = Field(min_length=1, max_length=256)
    frequency_penalty: StrictFloat | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, StrictFloat] | None = None
    logprobs: StrictBool | None = None
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1, le=UINT32_MAX)
    max_tokens: StrictInt | None = Field(default=None, ge=1, le=UINT32_MAX)
    n: StrictInt | None = Field(default=None, ge=1, le=128)
    parallel_tool_calls: StrictBool | None = None
    presence_penalty: StrictFloat | None = Field(default=None, ge=-2, le=2)
    reasoning_effort: str | None = None
    response_format: dict[str, Any] | None = None
    seed: StrictInt | None = Field(default=None, ge=INT64_MIN, le=INT64_MAX)
    stop: str | list[str] | None = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    # No upper bound and -1 ("every token") as vLLM takes them; an engine that
    # refuses them says why (OpenAI's own bounds are 2 and 20).
    temperature: StrictFloat | None = Field(default=None, ge=0)
    tool_choice: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    top_logprobs: StrictInt | None = Field(default=None, ge=-1, le=UINT32_MAX)
    top_p: StrictFloat | None = Field(default=None, ge=0, le=1)
    user: str | None = None
    # Engine extras the gateway bounds (the engines' own field): vLLM's -1 or 0 is
    # "off", TGI's is an i32.
    top_k: StrictInt | None = Field(default=None, ge=-1, le=INT32_MAX)

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
