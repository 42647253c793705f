"""What vLLM's OpenAI server makes of a chat request before it generates: validation
and the plan (tool mode, tokens, stop, limits) the fakes then render.

Mimics vllm-project/vllm at commit 002032e (vllm/entrypoints/openai/chat_completion/
protocol.py, `ChatCompletionRequest` and its `model_validator`s; vllm/exceptions.py
`VLLMValidationError`), the server the vLLM DLC 0.27 and LMI 28 (vLLM 0.26) ship.
Validation runs in a pydantic model of the same name, so failures read like pydantic's
(LMI shows that text; vLLM's SageMaker route replaces it, see vllm_output.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from . import echo_model as model


class VllmValidationError(ValueError):
    """vllm/exceptions.py: the parameter and the rejected value ride in the message."""

    def __init__(self, message: str, parameter: str | None = None, *, value: Any = None) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.value = value

    def __str__(self) -> str:
        base = super().__str__()
        extras = []
        if self.parameter is not None:
            extras.append(f"parameter={self.parameter}")
        if self.value is not None:
            extras.append(f"value={self.value}")
        return f"{base} ({', '.join(extras)})" if extras else base


_CORRECT_USAGE = 'Correct usage: `{"type": "function", "function": {"name": "my_function"}}`'


def _check_tool_usage(data: dict[str, Any]) -> None:
    if data.get("tools") == []:
        raise VllmValidationError(
            "`tools` must not be an empty array. "
            "Either provide at least one tool or omit the field entirely.",
            "tools",
        )
    if "tool_choice" not in data and data.get("tools"):
        data["tool_choice"] = "auto"
    choice = data.get("tool_choice")
    if choice is None or choice == "none":
        return
    if data.get("tools") is None:
        raise VllmValidationError("When using `tool_choice`, `tools` must be set.", "tool_choice")
    if choice not in ("auto", "required") and not isinstance(choice, dict):
        raise VllmValidationError(
            f"Invalid value for `tool_choice`: {choice}! "
            'Only named tools, "none", "auto" or "required" are supported.',
            "tool_choice",
        )
    if isinstance(choice, dict):
        function = choice.get("function")
        if not isinstance(function, dict):
            raise VllmValidationError(
                f"Invalid value for `function`: `{function}` in `tool_choice`! {_CORRECT_USAGE}",
                "tool_choice.function",
            )
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise VllmValidationError(
                f"Invalid `name` in `function`: `{name}` in `tool_choice`! {_CORRECT_USAGE}",
                "tool_choice.function.name",
            )
        names = [
            (t.get("function") or {}).get("name") for t in data["tools"] if isinstance(t, dict)
        ]
        if name not in names:
            raise VllmValidationError(
                "The tool specified in `tool_choice` does not match any of the specified `tools`",
                "tool_choice",
            )


def check_response_format(data: dict[str, Any]) -> None:
    """vLLM's chat and completion requests both refuse a json_schema format without
    its schema."""
    format_ = data.get("response_format")
    if (
        isinstance(format_, dict)
        and format_.get("type") == "json_schema"
        and format_.get("json_schema") is None
    ):
        raise VllmValidationError(
            "When response_format type is 'json_schema', the 'json_schema' field must be provided.",
            "response_format",
        )


def check_stream_options(data: dict[str, Any]) -> None:
    if data.get("stream_options") and not data.get("stream"):
        raise VllmValidationError(
            "Stream options can only be defined when `stream=True`.", "stream_options"
        )


def check_prompt_logprobs(data: dict[str, Any]) -> None:
    """vLLM's `check_logprobs` on `prompt_logprobs` (chat and completion requests):
    the prompt's logprobs come on the non-stream path only."""
    value = data.get("prompt_logprobs")
    if value is None:
        return
    if not isinstance(value, int):
        raise VllmValidationError("`prompt_logprobs` must be an integer.", "prompt_logprobs")
    if data.get("stream") and (value > 0 or value == -1):
        raise VllmValidationError(
            "`prompt_logprobs` are not available when `stream=True`.", "prompt_logprobs"
        )
    if value < 0 and value != -1:
        raise VllmValidationError(
            "`prompt_logprobs` must be a positive value or -1.", "prompt_logprobs"
        )


# vLLM's `--max-logprobs` default, and the fakes' vocabulary (what -1, "every
# token", stands for).
MAX_LOGPROBS = 20
VOCAB_SIZE = 32000


def logprobs_limit_error(data: Any) -> VllmValidationError | None:
    """vLLM's `_validate_logprobs` (vllm/sampling_params.py), when the request reaches
    the engine: more alternatives than `--max-logprobs` allows, -1 counted as the
    whole vocabulary. A 400 naming `logprobs`, vLLM's parameter."""
    if not isinstance(data, dict) or not data.get("logprobs"):
        return None
    count = data.get("top_logprobs")
    if not isinstance(count, int) or count == 0:
        return None
    count = VOCAB_SIZE if count == -1 else count
    if count <= MAX_LOGPROBS:
        return None
    return VllmValidationError(
        f"Requested sample logprobs of {count}, which is greater than max allowed: {MAX_LOGPROBS}",
        "logprobs",
        value=count,
    )


def _check_logprobs(data: dict[str, Any]) -> None:
    check_prompt_logprobs(data)
    top = data.get("top_logprobs")
    if top is None:
        return
    if not isinstance(top, (int, float)):
        raise VllmValidationError("`top_logprobs` must be an integer.", "top_logprobs")
    if top < 0 and top != -1:
        raise VllmValidationError("`top_logprobs` must be a positive value or -1.", "top_logprobs")
    if (top == -1 or top > 0) and not data.get("logprobs"):
        raise VllmValidationError(
            "when using `top_logprobs`, `logprobs` must be set to true.", "top_logprobs"
        )


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """The fields the fakes read, typed as vLLM types them (extra fields allowed)."""

    model_config = ConfigDict(extra="allow")

    messages: list[_Message]
    model: str | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = 0
    prompt_logprobs: int | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = 1
    response_format: dict[str, Any] | None = None
    seed: int | None = None
    stop: str | list[str] | None = []
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = "none"
    parallel_tool_calls: bool | None = True
    user: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _vllm_checks(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        check_response_format(data)
        check_stream_options(data)
        _check_logprobs(data)
        _check_tool_usage(data)
        return data


@dataclass(frozen=True)
class VllmPlan:
    """What every choice of the answer holds (all `n` choices say the same)."""

    n: int
    prompt_tokens: int
    reasoning: list[str]
    words: list[str]
    finish: str
    stop_reason: str | None
    mode: str  # "none", "auto", "required" or "named"
    calls: list[model.PlannedCall]
    logprobs: bool
    top_logprobs: int
    stream: bool
    include_usage: bool
    # A reasoning parser is configured: usage reports reasoning tokens and the final
    # end-of-sequence delta goes through the parser (and comes out empty).
    reasoning_parser: bool
    prompt_logprobs: int | None = None  # how many alternatives per prompt token
    continuous_usage: bool = False  # stream_options.continuous_usage_stats (with usage)

    def arguments(self, call: model.PlannedCall) -> str:
        # Hermes and the structured-output parsers both json.dumps the arguments.
        return json.dumps(call.arguments, ensure_ascii=False)

    @property
    def completion_tokens(self) -> int:
        calls = sum(1 + len(model.json_pieces(self.arguments(c))) for c in self.calls)
        return len(self.reasoning) + len(self.words) + calls


def _tool_mode(req: ChatCompletionRequest, round_trip: bool) -> tuple[str, str]:
    """(mode, choice for plan_calls)."""
    choice = req.tool_choice
    if not req.tools or choice is None or choice == "none":
        return "none", ""
    if isinstance(choice, dict):
        return "named", str((choice.get("function") or {}).get("name"))
    if choice == "auto" and round_trip:
        return "none", ""  # the model answers the tool result in prose
    return str(choice), str(choice)


def plan(req: ChatCompletionRequest, *, reasoning_parser: bool) -> VllmPlan:
    messages = [m.model_dump() for m in req.messages]
    mode, choice = _tool_mode(req, model.tool_results(messages) is not None)
    thinking = reasoning_parser or bool(getattr(req, "echo_reasoning", False))
    reasoning = model.tokens(f"Thinking about: {model.user_text(messages)}") if thinking else []
    calls: list[model.PlannedCall] = []
    words: list[str] = []
    finish, stop_reason = "stop", None
    if mode != "none":
        parallel = req.parallel_tool_calls is not False and mode != "named"
        text = model.message_text(model.last_user(messages).get("content"))
        calls = model.plan_calls(req.tools or [], choice, text, parallel=parallel)
        finish = "stop" if mode == "named" else "tool_calls"
    else:
        answer = model.json_answer(req.response_format, model.user_text(messages))
        words, stop_reason = model.cut_before_stop(
            model.tokens(answer if answer is not None else model.prose(messages)), req.stop
        )
        limit = (
            req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        )
        if limit is not None and len(reasoning) + len(words) > limit:
            budget = max(limit, 0)
            reasoning, words = reasoning[:budget], words[: max(budget - len(reasoning), 0)]
            finish, stop_reason = "length", None
    return VllmPlan(
        n=max(req.n or 1, 1),
        prompt_tokens=model.prompt_tokens(messages),
        reasoning=reasoning,
        words=words,
        finish=finish,
        stop_reason=stop_reason,
        mode=mode,
        calls=calls,
        logprobs=bool(req.logprobs),
        top_logprobs=req.top_logprobs or 0,
        stream=bool(req.stream),
        include_usage=bool((req.stream_options or {}).get("include_usage")),
        reasoning_parser=thinking,
        prompt_logprobs=req.prompt_logprobs,
        continuous_usage=bool(
            (req.stream_options or {}).get("include_usage")
            and (req.stream_options or {}).get("continuous_usage_stats")
        ),
    )
