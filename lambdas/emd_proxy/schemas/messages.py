"""Anthropic's Messages API: the request, as in
https://docs.anthropic.com/en/api/messages (and the shapes of the `anthropic` SDK's
`types/`), and the answers.

The request is permissive like every request here: unknown fields are kept (engine
extras such as `repetition_penalty` reach the engine). Known fields are checked, so a
client gets a 400 naming the field. Content blocks are told apart by `type`; a block
type the gateway cannot serve (documents, server-tool results, ...) is a 400 naming
the block and the types it takes.

The answer models document what `/v1/messages` sends; the unit tests check every
rendered event and message against them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    RootModel,
    StrictBool,
    StrictFloat,
    StrictInt,
    model_validator,
)

from .base import PermissiveModel, RequestModel
from .limits import INT32_MAX, UINT32_MAX

# --- request content blocks -----------------------------------------------------------


class TextBlockParam(PermissiveModel):
    type: Literal["text"]
    text: str


class Base64ImageSource(PermissiveModel):
    type: Literal["base64"]
    media_type: str = Field(min_length=1)
    data: str = Field(min_length=1)


class UrlImageSource(PermissiveModel):
    type: Literal["url"]
    url: str = Field(min_length=1)


class ImageBlockParam(PermissiveModel):
    type: Literal["image"]
    source: Annotated[Base64ImageSource | UrlImageSource, Field(discriminator="type")]


class ToolUseBlockParam(PermissiveModel):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]


ToolResultPart = Annotated[TextBlockParam | ImageBlockParam, Field(discriminator="type")]


class ToolResultBlockParam(PermissiveModel):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[ToolResultPart] | None = None
    is_error: StrictBool | None = None


class ThinkingBlockParam(PermissiveModel):
    """A thinking block sent back with an earlier assistant turn (dropped: engines'
    chat templates leave out past reasoning)."""

    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


class RedactedThinkingBlockParam(PermissiveModel):
    type: Literal["redacted_thinking"]
    data: str


ContentBlockParam = Annotated[
    TextBlockParam
    | ImageBlockParam
    | ToolUseBlockParam
    | ToolResultBlockParam
    | ThinkingBlockParam
    | RedactedThinkingBlockParam,
    Field(discriminator="type"),
]


class MessageParam(PermissiveModel):
    # `system` turns inside `messages` are in the SDK's MessageParam too.
    role: Literal["user", "assistant", "system"]
    content: str | list[ContentBlockParam]


# --- tools and options ------------------------------------------------------------------


class ToolParam(PermissiveModel):
    """A client tool (`type` absent or "custom"); Anthropic's server tools (web search,
    code execution, ...) have another `type` and no `input_schema`."""

    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None


class ToolChoiceParam(PermissiveModel):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: StrictBool | None = None

    @model_validator(mode="after")
    def _named(self) -> ToolChoiceParam:
        if self.type == "tool" and not self.name:
            raise ValueError('a tool_choice of type "tool" needs the tool\'s `name`')
        return self


class ThinkingConfigParam(PermissiveModel):
    # "enabled" (with budget_tokens) and "adaptive" think; "disabled" does not.
    type: Literal["enabled", "disabled", "adaptive", "between_tools"]
    budget_tokens: StrictInt | None = Field(default=None, ge=0, le=UINT32_MAX)


class _Conversation(RequestModel):
    """What both /v1/messages and /v1/messages/count_tokens take."""

    messages: list[MessageParam] = Field(min_length=1)
    model: str = Field(min_length=1, max_length=256)
    system: str | list[TextBlockParam] | None = None
    thinking: ThinkingConfigParam | None = None
    tool_choice: ToolChoiceParam | None = None
    tools: list[ToolParam] | None = None


class MessagesRequest(_Conversation):
    # Required as Anthropic requires it (a missing value is a 400, not a default).
    # Strict types and the engines' integer limits (limits.py).
    max_tokens: StrictInt = Field(ge=1, le=UINT32_MAX)
    metadata: dict[str, Any] | None = None
    stop_sequences: list[str] | None = None
    stream: StrictBool | None = None
    temperature: StrictFloat | None = Field(default=None, ge=0, le=1)
    top_k: StrictInt | None = Field(default=None, ge=0, le=INT32_MAX)
    top_p: StrictFloat | None = Field(default=None, ge=0, le=1)


class CountTokensRequest(_Conversation):
    pass


# --- answers: https://docs.anthropic.com/en/api/messages (response) and
# https://docs.anthropic.com/en/docs/build-with-claude/streaming ----------------------

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"]


class TextBlock(BaseModel):
    type: Literal["text"]
    text: str


class ThinkingBlock(BaseModel):
    type: Literal["thinking"]
    thinking: str
    # Anthropic signs thinking to verify it when sent back; the gateway cannot, so
    # this is always "" (and thinking sent back is dropped, not verified).
    signature: str


class ToolUseBlock(BaseModel):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


ContentBlock = Annotated[TextBlock | ThinkingBlock | ToolUseBlock, Field(discriminator="type")]


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int


class Message(BaseModel):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[ContentBlock]
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: Usage


class MessageTokensCount(BaseModel):
    input_tokens: int = Field(description="An estimate: about four characters per token.")


class MessageStartEvent(BaseModel):
    type: Literal["message_start"]
    message: Message


class ContentBlockStartEvent(BaseModel):
    type: Literal["content_block_start"]
    index: int
    content_block: ContentBlock


class TextDelta(BaseModel):
    type: Literal["text_delta"]
    text: str


class InputJsonDelta(BaseModel):
    type: Literal["input_json_delta"]
    partial_json: str


class ThinkingDelta(BaseModel):
    type: Literal["thinking_delta"]
    thinking: str


class SignatureDelta(BaseModel):
    type: Literal["signature_delta"]
    signature: str


class ContentBlockDeltaEvent(BaseModel):
    type: Literal["content_block_delta"]
    index: int
    delta: Annotated[
        TextDelta | InputJsonDelta | ThinkingDelta | SignatureDelta, Field(discriminator="type")
    ]


class ContentBlockStopEvent(BaseModel):
    type: Literal["content_block_stop"]
    index: int


class MessageDelta(BaseModel):
    stop_reason: StopReason | None
    stop_sequence: str | None


class MessageDeltaEvent(BaseModel):
    type: Literal["message_delta"]
    delta: MessageDelta
    usage: Usage  # final totals: the SDK's accumulator overwrites message_start's


class MessageStopEvent(BaseModel):
    type: Literal["message_stop"]


class PingEvent(BaseModel):
    type: Literal["ping"]


class AnthropicErrorObject(BaseModel):
    type: str = Field(
        description="invalid_request_error, authentication_error, permission_error, "
        "not_found_error, request_too_large, rate_limit_error, api_error, "
        "overloaded_error or timeout_error"
    )
    message: str


class AnthropicErrorResponse(BaseModel):
    """Every non-2xx answer on /v1/messages, and the `data:` of an `event: error`."""

    type: Literal["error"]
    error: AnthropicErrorObject


class MessageStreamEvent(
    RootModel[
        Annotated[
            MessageStartEvent
            | ContentBlockStartEvent
            | ContentBlockDeltaEvent
            | ContentBlockStopEvent
            | MessageDeltaEvent
            | MessageStopEvent
            | PingEvent
            | AnthropicErrorResponse,
            Field(discriminator="type"),
        ]
    ]
):
    """The `data:` of one event of a streamed answer; its `event:` line names the
    same type."""
