"""The chat request's cross-field rules, checked by the gateway before any engine sees
the request, with vLLM's own wording and `param`.

Why here: vLLM's OpenAI server checks these in `ChatCompletionRequest`'s
`model_validator`s (vllm-project/vllm vllm/entrypoints/openai/chat_completion/
protocol.py: `validate_stream_options`, `check_logprobs`, `check_tool_usage`, and the
empty-`tools` check of newer versions), so they are pydantic errors, and vLLM's
SageMaker route (vllm/entrypoints/sagemaker/api_router.py `invocations`) swallows every
pydantic error of every request type into one 400, "Cannot find suitable handler for
request. Expected one of: [...]": the client would never learn what to fix. TGI and
LMI refuse the same requests in their own words (or ignore them). OpenAI refuses
them too. So the gateway answers them, the same on every engine, as vLLM's own server
would."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequestError

if TYPE_CHECKING:
    from .chat import ChatCompletionRequest

_CORRECT_USAGE = 'Correct usage: `{"type": "function", "function": {"name": "my_function"}}`'


def check_chat_rules(req: ChatCompletionRequest) -> None:
    """400 naming the field, in vLLM's order of checks."""
    _check_stream_options(req)
    _check_logprobs(req)
    _check_tool_usage(req)


def _check_stream_options(req: ChatCompletionRequest) -> None:
    options = req.stream_options
    # vLLM: `data.get("stream_options") and not data.get("stream")` (an empty {} passes).
    if options is not None and options.model_dump(exclude_unset=True) and not req.stream:
        raise InvalidRequestError(
            "Stream options can only be defined when `stream=True`.", param="stream_options"
        )


def _check_logprobs(req: ChatCompletionRequest) -> None:
    # vLLM's -1 means "every token", and needs logprobs as any other count does.
    if req.top_logprobs and not req.logprobs:
        raise InvalidRequestError(
            "when using `top_logprobs`, `logprobs` must be set to true.", param="top_logprobs"
        )


def _check_tool_usage(req: ChatCompletionRequest) -> None:
    tools = req.tools
    if tools == []:
        raise InvalidRequestError(
            "`tools` must not be an empty array. "
            "Either provide at least one tool or omit the field entirely.",
            param="tools",
        )
    choice = req.tool_choice
    if choice is None or choice == "none":
        return
    if tools is None:
        raise InvalidRequestError(
            "When using `tool_choice`, `tools` must be set.", param="tool_choice"
        )
    if isinstance(choice, str):
        if choice not in ("auto", "required"):
            raise InvalidRequestError(
                f"Invalid value for `tool_choice`: {choice}! "
                'Only named tools, "none", "auto" or "required" are supported.',
                param="tool_choice",
            )
        return
    function = choice.get("function")
    if not isinstance(function, dict):
        raise InvalidRequestError(
            f"Invalid value for `function`: `{function}` in `tool_choice`! {_CORRECT_USAGE}",
            param="tool_choice.function",
        )
    if "name" not in function:
        raise InvalidRequestError(
            f"Expected field `name` in `function` in `tool_choice`! {_CORRECT_USAGE}",
            param="tool_choice.function.name",
        )
    name = function["name"]
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(
            f"Invalid `name` in `function`: `{name}` in `tool_choice`! {_CORRECT_USAGE}",
            param="tool_choice.function.name",
        )
    if name not in {_tool_name(tool) for tool in tools}:
        raise InvalidRequestError(
            "The tool specified in `tool_choice` does not match any of the specified "
            f"`tools` (`{name}` is not among them).",
            param="tool_choice",
        )


def _tool_name(tool: dict[str, Any]) -> Any:
    function = tool.get("function")
    return function.get("name") if isinstance(function, dict) else None
