"""The Responses API: the request, as in
https://platform.openai.com/docs/api-reference/responses/create, the input items it
reads, and the answers (the Response object and its stream events).

The gateway is stateless: the fields that refer to stored state are accepted by the
schema so the translation (shapes/responses.py) can refuse them with a 400 naming the
field. Fields with no engine equivalent (`include`, prompt caching, service tier,
...) are read and dropped; unknown fields pass through to the engine as chat extras
(`top_k`, `echo_reasoning`), as on chat completions.

The answer models document what `/v1/responses` sends (the shape builds plain dicts;
tests check them against these and against the openai SDK's types)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from .base import PermissiveModel, RequestModel
from .limits import UINT32_MAX


class ReasoningConfig(PermissiveModel):
    effort: str | None = None
    summary: str | None = None


class TextConfig(PermissiveModel):
    format: dict[str, Any] | None = None
    verbosity: str | None = None


class ResponsesRequest(RequestModel):
    # Fields in the order of the OpenAI reference; strict types and the engines'
    # integer limits (limits.py). Engine extras (`seed`, `top_k`) are checked as the
    # chat request's fields (shapes/responses_input.py).
    background: StrictBool | None = None
    conversation: str | dict[str, Any] | None = None
    include: list[str] | None = None
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: StrictInt | None = Field(default=None, ge=1, le=UINT32_MAX)
    max_tool_calls: StrictInt | None = Field(default=None, ge=0, le=UINT32_MAX)
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    model: str = Field(min_length=1, max_length=256)
    parallel_tool_calls: StrictBool | None = None
    previous_response_id: str | None = None
    prompt: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    reasoning: ReasoningConfig | None = None
    safety_identifier: str | None = None
    service_tier: str | None = None
    store: StrictBool | None = None
    stream: StrictBool | None = None
    stream_options: dict[str, Any] | None = None
    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    text: TextConfig | None = None
    tool_choice: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    top_logprobs: StrictInt | None = Field(default=None, ge=0, le=20)
    top_p: StrictFloat | None = Field(default=None, ge=0, le=1)
    truncation: Literal["auto", "disabled"] | None = None
    user: str | None = None


# Responses fields that have no chat equivalent: read, never sent to the engine (every
# other unknown field is an engine extra).
DROPPED_FIELDS = frozenset(
    {
        "access_programs",
        "background_options",
        "context_management",
        "image",
        "moderation",
        "prompt_cache_options",
    }
)


# --- input items (validated one by one, so an error names `input.N....`) -------------


class ContentPart(PermissiveModel):
    """`input_text`, `input_image`, `input_file` (user side) or `output_text`,
    `refusal` (assistant history)."""

    type: str = Field(min_length=1)
    text: str | None = None
    refusal: str | None = None
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


class MessageItem(PermissiveModel):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]


class FunctionCallItem(PermissiveModel):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str


class FunctionCallOutputItem(PermissiveModel):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[ContentPart]


class FunctionTool(PermissiveModel):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


# --- answers: https://platform.openai.com/docs/api-reference/responses/object --------


class _Open(BaseModel):
    # Newer OpenAI fields may be added; the objects stay open like the SDK's.
    model_config = ConfigDict(extra="allow")


class OutputText(_Open):
    type: Literal["output_text"]
    text: str
    annotations: list[Any]
    logprobs: list[Any]


class OutputMessage(_Open):
    id: str
    type: Literal["message"]
    status: Literal["in_progress", "completed", "incomplete"]
    role: Literal["assistant"]
    content: list[OutputText]


class ReasoningText(_Open):
    type: Literal["reasoning_text"]
    text: str


class OutputReasoning(_Open):
    id: str
    type: Literal["reasoning"]
    summary: list[Any]
    content: list[ReasoningText]
    status: Literal["in_progress", "completed", "incomplete"]


class OutputFunctionCall(_Open):
    id: str
    type: Literal["function_call"]
    status: Literal["in_progress", "completed", "incomplete"]
    call_id: str
    name: str
    arguments: str = Field(description="The arguments as JSON text.")


class ResponseUsage(_Open):
    input_tokens: int
    input_tokens_details: dict[str, int]
    output_tokens: int
    output_tokens_details: dict[str, int]
    total_tokens: int


class ResponseError(_Open):
    code: str
    message: str
    param: str | None = None
    type: str | None = None


class Response(_Open):
    id: str = Field(description="`resp_...`; the gateway stores nothing, so it cannot be fetched")
    object: Literal["response"]
    created_at: int
    status: Literal["in_progress", "completed", "incomplete", "failed"]
    background: bool
    completed_at: int | None
    error: ResponseError | None
    incomplete_details: dict[str, str] | None
    instructions: str | None
    max_output_tokens: int | None
    max_tool_calls: int | None
    model: str
    output: list[OutputReasoning | OutputMessage | OutputFunctionCall]
    parallel_tool_calls: bool
    previous_response_id: None
    reasoning: dict[str, Any]
    store: Literal[False]
    temperature: float | None
    text: dict[str, Any]
    tool_choice: str | dict[str, Any]
    tools: list[dict[str, Any]]
    top_p: float | None
    truncation: Literal["auto", "disabled"]
    usage: ResponseUsage | None
    user: str | None
    metadata: dict[str, str]


class ResponseStreamEvent(_Open):
    """One SSE event of a streamed response (`event: <type>` then `data: <this>`):
    `response.created`, `response.in_progress`, per output item
    `response.output_item.added`, its content and argument events and
    `response.output_item.done`, then `response.completed`, `response.incomplete`
    or `response.failed`. No `[DONE]` follows."""

    type: str
    sequence_number: int
