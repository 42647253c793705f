"""What vLLM's OpenAI server makes of a legacy completion request (a body with
`prompt`): validation, the serving checks in vLLM's order, and the plan (per prompt: the
echo, stop, limits) that vllm_completion_output.py renders.

Mimics vllm-project/vllm at the commits the chat fake follows: 002032e (entrypoints/
openai/completion/protocol.py `CompletionRequest` and its `model_validator`s;
generate/base/protocol.py at 022e555 `StopParam` (at most VLLM_MAX_STOP_STRINGS = 4),
`StreamOptions`), completion/serving.py at 030ea52 (`_create_completion`), renderers/
online_renderer.py `render_completion` (suffix, prompt embeds), renderers/base.py and
params.py (`render_prompts`: "You must pass at least one prompt"; `TokenizeParams`:
max_tokens above the context, prompt too long), sampling_params.py (`from_optional`,
`_verify_args`, `_validate_logprobs`: at most 20 logprobs), v1/engine/input_processor.py
(`_validate_model_input`: empty prompt, token ids out of the vocabulary) and
serve/utils/error_response.py (`create_error_response`: how an exception becomes an
error body). Where each check runs decides what the client sees, so the plan keeps that:
- `CompletionRequest` failures are pydantic errors (vLLM's SageMaker route answers them
  with "Cannot find suitable handler"; LMI shows pydantic's text);
- the serving layer *returns* an ErrorResponse for a streamed beam search, a wrong
  `model` (404) and `suffix`/prompt-embeds misuse: `ReturnedError`;
- rendering and the sampling parameters *raise* (`VllmValidationError` or ValueError)
  before any response starts: a 400 on vLLM, whether streamed or not;
- the engine's own checks run when the first output is awaited, so for a streamed
  request they arrive as an error event inside a 200 stream: `VllmCompletionPlan.
  engine_error`.
The fake serves no prompt embeddings (as vLLM started without --enable-prompt-embeds),
ignores beam search, `ignore_eos`, `min_tokens`, `include_stop_str_in_output` and
`return_token_ids`, and cuts stop strings the way the chat echo does (before the match,
the finish riding on the last piece); vLLM's default `max_tokens` of 16 applies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import echo_model as model
from .vllm_request import VllmValidationError, check_response_format, check_stream_options

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
# vllm/envs.py defaults.
MAX_COMPLETION_PROMPTS = 1024
MAX_STOP_STRINGS = 4
MAX_N_SEQUENCES = 16384
# ModelConfig.max_logprobs default (--max-logprobs).
MAX_LOGPROBS = 20

_TokenIds = list[Annotated[int, Field(ge=0)]]


class ReturnedError(Exception):
    """An ErrorResponse the serving layer returns rather than raises (vLLM's route
    writes it with its own status; LMI's formatter mangles it, see lmi.py)."""

    def __init__(
        self,
        message: str,
        status: int = 400,
        kind: str = "BadRequestError",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.kind, self.param = message, status, kind, param

    def info(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.status,
        }


def raised_error_info(exc: Exception) -> dict[str, Any]:
    """create_error_response(exc): the ErrorInfo vLLM's exception handler (and its
    streaming error event) writes for an exception raised while serving."""
    param = exc.parameter if isinstance(exc, VllmValidationError) else None
    return {"message": str(exc), "type": "BadRequestError", "param": param, "code": 400}


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool | None = False
    continuous_usage_stats: bool | None = False


class _JsonSchema(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


class _ResponseFormat(BaseModel):
    """AnyResponseFormat, loosely: the structural-tag variants are not checked."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text", "json_object", "json_schema", "structural_tag"]
    json_schema: _JsonSchema | None = None


class _StructuredOutputs(BaseModel):
    model_config = ConfigDict(extra="allow")

    json_: str | dict[str, Any] | None = Field(default=None, alias="json")
    regex: str | None = None
    choice: list[str] | None = None


def _cache_salt(value: Any) -> None:
    """generate/base/protocol.py `validate_cache_salt`."""
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise VllmValidationError(
            "Parameter 'cache_salt' must be a non-empty string if provided.", "cache_salt"
        )
    if len(value) > 128 or any(c in "@/\\\x00" for c in value):
        raise VllmValidationError(
            "Parameter 'cache_salt' must be at most 128 characters and must "
            "not contain '@', '/', '\\\\', or NUL.",
            "cache_salt",
        )


def _is_list_of_ints(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) for v in value)


class CompletionRequest(BaseModel):
    """vLLM's `CompletionRequest`: the same field types and `model_validator`s, in the
    same order (pydantic runs "before" validators last-defined first, as it does for
    vLLM's), so the same bodies fail with the same first error. Extra fields allowed."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    model: str | None = None
    prompt: _TokenIds | list[_TokenIds] | str | list[str] | None = None
    echo: bool | None = False
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: int | None = None
    max_tokens: int | None = 16
    n: int = 1
    presence_penalty: float | None = None
    seed: int | None = Field(None, ge=_INT64_MIN, le=_INT64_MAX)
    stop: str | Annotated[list[str], Field(max_length=MAX_STOP_STRINGS)] | None = []
    stream: bool | None = False
    stream_options: _StreamOptions | None = None
    suffix: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None
    use_beam_search: bool = False
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    length_penalty: float = 1.0
    stop_token_ids: list[int] | None = []
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False
    min_tokens: int = 0
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    truncate_prompt_tokens: Annotated[int, Field(ge=-1, le=_INT64_MAX)] | None = None
    truncation_side: Literal["left", "right"] | None = None
    allowed_token_ids: list[int] | None = None
    prompt_logprobs: int | None = None
    logprob_token_ids: list[int] | None = Field(default=None, min_length=1)
    bad_words: list[str] = Field(default_factory=list)
    prompt_embeds: bytes | list[bytes] | None = None
    add_special_tokens: bool = True
    response_format: _ResponseFormat | None = None
    structured_outputs: _StructuredOutputs | None = None
    priority: int = Field(default=0, ge=_INT64_MIN, le=_INT64_MAX)
    request_id: str = ""
    return_tokens_as_token_ids: bool | None = None
    return_token_ids: bool | None = None
    cache_salt: str | None = Field(default=None, min_length=1, max_length=1024)
    kv_transfer_params: dict[str, Any] | None = None
    vllm_xargs: dict[str, str | int | float | list[str | int | float]] | None = None
    stream_interval: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="before")
    @classmethod
    def check_cache_salt_support(cls, data: Any) -> Any:
        if isinstance(data, dict):
            _cache_salt(data.get("cache_salt"))
        return data

    @model_validator(mode="before")
    @classmethod
    def normalize_null_max_tokens(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("max_tokens") is None:
            data = {**data, "max_tokens": 16}
        return data

    @model_validator(mode="before")
    @classmethod
    def validate_response_format(cls, data: Any) -> Any:
        if isinstance(data, dict):
            check_response_format(data)
        return data

    @model_validator(mode="before")
    @classmethod
    def check_structured_outputs_count(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("structured_outputs"), dict):
            return data
        kinds = data["structured_outputs"]
        if sum(kinds.get(k) is not None for k in ("json", "regex", "choice")) > 1:
            raise VllmValidationError(
                "You can only use one kind of constraints for structured "
                "outputs ('json', 'regex' or 'choice').",
                "structured_outputs",
            )
        return data

    @model_validator(mode="before")
    @classmethod
    def check_logprobs(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        ids = data.get("logprob_token_ids")
        if ids is not None and isinstance(ids, list):
            if not ids:
                raise VllmValidationError(
                    "`logprob_token_ids` must not be an empty list.", "logprob_token_ids"
                )
            if data.get("use_beam_search"):
                raise VllmValidationError(
                    "`logprob_token_ids` is not supported with beam search.", "logprob_token_ids"
                )
            if data.get("echo") and data.get("max_tokens") == 0:
                raise VllmValidationError(
                    "`logprob_token_ids` is not supported when `echo=True` and "
                    "`max_tokens=0` because no output tokens are generated.",
                    "logprob_token_ids",
                )
            if data.get("logprobs") is None:
                raise VllmValidationError(
                    "when using `logprob_token_ids`, `logprobs` must be set.", "logprob_token_ids"
                )
        for name in ("prompt_logprobs", "logprobs"):
            value = data.get(name)
            if value is not None and not isinstance(value, (int, float)):
                raise VllmValidationError(f"`{name}` must be an integer.", name, value=value)
        prompt_logprobs = data.get("prompt_logprobs")
        if prompt_logprobs is not None:
            if data.get("stream") and (prompt_logprobs > 0 or prompt_logprobs == -1):
                raise VllmValidationError(
                    "`prompt_logprobs` are not available when `stream=True`.", "prompt_logprobs"
                )
            if prompt_logprobs < 0 and prompt_logprobs != -1:
                raise VllmValidationError(
                    "`prompt_logprobs` must be a positive value or -1.",
                    "prompt_logprobs",
                    value=prompt_logprobs,
                )
        logprobs = data.get("logprobs")
        if logprobs is not None and logprobs < 0 and logprobs != -1:
            raise VllmValidationError(
                "`logprobs` must be a positive value or -1.", "logprobs", value=logprobs
            )
        return data

    @model_validator(mode="before")
    @classmethod
    def validate_stream_options(cls, data: Any) -> Any:
        if isinstance(data, dict):
            check_stream_options(data)
        return data

    @model_validator(mode="before")
    @classmethod
    def validate_prompt_and_prompt_embeds(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        prompt, embeds = data.get("prompt"), data.get("prompt_embeds")
        prompt_empty = prompt is None or prompt == ""
        embeds_empty = embeds is None or (isinstance(embeds, list) and not embeds)
        if prompt_empty and embeds_empty:
            raise VllmValidationError(
                "Either prompt or prompt_embeds must be provided and non-empty.", "prompt"
            )
        return data

    @model_validator(mode="before")
    @classmethod
    def validate_prompt_list_length(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        prompt, embeds = data.get("prompt"), data.get("prompt_embeds")
        count = MAX_COMPLETION_PROMPTS
        if (
            isinstance(prompt, list)
            and prompt
            and not _is_list_of_ints(prompt)
            and len(prompt) > count
        ):
            raise VllmValidationError(
                f"prompt list length {len(prompt)} exceeds the maximum "
                f"allowed count of {count}. To increase this "
                "limit, set the VLLM_MAX_COMPLETION_PROMPTS "
                "environment variable.",
                "prompt",
            )
        if isinstance(embeds, list) and len(embeds) > count:
            raise VllmValidationError(
                f"prompt_embeds list length {len(embeds)} exceeds "
                f"the maximum allowed count of {count}. To increase "
                "this limit, set the VLLM_MAX_COMPLETION_PROMPTS "
                "environment variable.",
                "prompt_embeds",
            )
        return data


@dataclass(frozen=True)
class PromptAnswer:
    """One prompt's generation (every one of its `n` choices says the same)."""

    text: str  # the prompt as vLLM echoes it (token ids decoded)
    tokens: list[str]  # the prompt's tokens, for echo logprobs
    words: list[str]  # the generated tokens the client sees
    finish: str
    stop_reason: str | None
    # Tokens usage counts per choice: the words, or the one hidden token of
    # echo-without-generation (the end-of-sequence token is free, as in the chat echo).
    completion_tokens: int


@dataclass(frozen=True)
class VllmCompletionPlan:
    n: int
    answers: list[PromptAnswer]
    echo: bool
    echo_only: bool  # echo with max_tokens 0: the prompt alone
    logprobs: int | None
    prompt_logprobs: int | None  # per choice, in the non-streamed answer
    stream: bool
    include_usage: bool
    continuous_usage: bool
    # An engine check that fails when the first output is awaited.
    engine_error: Exception | None


def _prompts(req: CompletionRequest) -> list[str | list[int]]:
    """prompt_to_seq: one string or one token list is one prompt."""
    prompt = req.prompt
    if prompt is None:
        return []
    if isinstance(prompt, str) or (prompt and _is_list_of_ints(prompt)):
        return [prompt]  # type: ignore[list-item]
    return list(prompt)  # type: ignore[arg-type]


def _serving_checks(req: CompletionRequest, served_model: str) -> None:
    if req.stream and req.use_beam_search:
        raise ReturnedError("Streaming is not currently supported with beam search")
    if req.model and req.model != served_model:
        # OpenAIServing._check_model (no `param` in the current source).
        raise ReturnedError(f"The model `{req.model}` does not exist.", 404, "NotFoundError")
    if req.suffix is not None:
        raise ReturnedError("suffix is not currently supported")
    if req.echo and req.prompt_embeds is not None:
        raise ReturnedError("Echo is unsupported with prompt embeds.")
    if req.prompt_logprobs is not None and req.prompt_embeds is not None:
        raise ReturnedError("prompt_logprobs is not compatible with prompt embeds.")


def _max_input_tokens(req: CompletionRequest, max_model_len: int) -> int:
    """TokenizeParams(max_total_tokens=max_model_len, max_output_tokens=max_tokens or 0)
    and its __post_init__ checks (the message's odd spacing is vLLM's)."""
    max_output = req.max_tokens or 0
    if max_output > max_model_len:
        raise VllmValidationError(
            f"max_tokens={max_output}cannot be greater than "
            f"max_model_len=max_total_tokens={max_model_len}. "
            "Please request fewer output tokens.",
            "max_tokens",
            value=max_output,
        )
    max_input = max_model_len - max_output
    truncate = req.truncate_prompt_tokens
    if truncate is not None and truncate > max_input:
        raise VllmValidationError(
            f"truncate_prompt_tokens={truncate} cannot be greater than max_model_len - "
            f"max_tokens = {max_input}. Please request a smaller truncation size.",
            "truncate_prompt_tokens",
            value=truncate,
        )
    return max_input


def _tokenize(
    req: CompletionRequest, prompt: str | list[int], max_input: int, max_model_len: int
) -> tuple[str, list[str]]:
    """The prompt's text and tokens after truncation and the length check (the text
    stays whole: vLLM echoes the prompt as sent)."""
    text = prompt if isinstance(prompt, str) else model.decode(prompt)
    toks = model.tokens(text)
    keep = req.truncate_prompt_tokens
    if keep is not None:
        keep = max_input if keep < 0 else keep
        if keep < len(toks):
            left = (req.truncation_side or "left") == "left"
            toks = (toks[len(toks) - keep :] if left else toks[:keep]) if keep else []
    if len(toks) > max_input:
        raise VllmValidationError(
            f"You passed {len(toks)} input tokens and requested {req.max_tokens or 0} output "
            f"tokens. However, the model's context length is only {max_model_len} "
            f"tokens, resulting in a maximum input length of {max_input} tokens. "
            "Please reduce the length of the input prompt.",
            "input_tokens",
            value=len(toks),
        )
    return text, toks


def _sampling_checks(req: CompletionRequest, max_tokens: int) -> None:
    """SamplingParams.from_optional and _verify_args, in their order."""
    if req.logit_bias:
        bad = [k for k in req.logit_bias if not _int_like(k)]
        if bad:
            raise VllmValidationError(
                "logit_bias contains key(s) that cannot be converted to integer "
                f"token IDs: {bad!r}",
                "logit_bias",
                value=bad,
            )
    n = req.n
    if n < 1:
        raise VllmValidationError(f"n must be at least 1, got {n}.")
    if n > MAX_N_SEQUENCES:
        raise VllmValidationError(
            f"n must be at most {MAX_N_SEQUENCES}, got {n}. To increase this limit, "
            "set the VLLM_MAX_N_SEQUENCES environment variable."
        )
    presence = req.presence_penalty if req.presence_penalty is not None else 0.0
    frequency = req.frequency_penalty if req.frequency_penalty is not None else 0.0
    repetition = req.repetition_penalty if req.repetition_penalty is not None else 1.0
    temperature = req.temperature if req.temperature is not None else 1.0
    top_p = req.top_p if req.top_p is not None else 1.0
    if not -2.0 <= presence <= 2.0:
        raise VllmValidationError(f"presence_penalty must be in [-2, 2], got {presence}.")
    if not -2.0 <= frequency <= 2.0:
        raise VllmValidationError(f"frequency_penalty must be in [-2, 2], got {frequency}.")
    if not math.isfinite(repetition):
        raise VllmValidationError(f"repetition_penalty must be a finite number, got {repetition}.")
    if repetition <= 0.0:
        raise VllmValidationError(
            f"repetition_penalty must be greater than zero, got {repetition}."
        )
    if not math.isfinite(temperature):
        raise VllmValidationError(
            f"temperature must be a finite number, got {temperature}.",
            "temperature",
            value=temperature,
        )
    if temperature < 0.0:
        raise VllmValidationError(
            f"temperature must be non-negative, got {temperature}.",
            "temperature",
            value=temperature,
        )
    if temperature > 2.0:
        raise VllmValidationError(
            f"temperature must be in [0, 2], got {temperature}.", "temperature", value=temperature
        )
    if not 0.0 < top_p <= 1.0:
        raise VllmValidationError(f"top_p must be in (0, 1], got {top_p}.", "top_p", value=top_p)
    top_k = req.top_k if req.top_k is not None else 0
    if top_k < -1:
        raise VllmValidationError(f"top_k must be 0 (disable), or at least 1, got {top_k}.")
    min_p = req.min_p if req.min_p is not None else 0.0
    if not 0.0 <= min_p <= 1.0:
        raise VllmValidationError(f"min_p must be in [0, 1], got {min_p}.")
    if max_tokens < 1:
        raise VllmValidationError(
            f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens", value=max_tokens
        )
    if req.min_tokens < 0:
        raise VllmValidationError(
            f"min_tokens must be greater than or equal to 0, got {req.min_tokens}."
        )
    if req.min_tokens > max_tokens:
        raise VllmValidationError(
            f"min_tokens must be less than or equal to max_tokens={max_tokens}, "
            f"got {req.min_tokens}."
        )
    stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if any(not s for s in stops):
        raise VllmValidationError("stop cannot contain an empty string.")
    if any(not w for w in req.bad_words):
        raise VllmValidationError(
            f"bad_words cannot contain an empty string. Got bad_words={req.bad_words}"
        )
    if temperature < 1e-5 and n > 1:  # _verify_greedy_sampling
        raise VllmValidationError(f"n must be 1 when using greedy sampling, got {n}.")


def _int_like(key: str) -> bool:
    try:
        int(key)
    except ValueError:
        return False
    return True


def _out_of_vocab(name: str, ids: list[int]) -> VllmValidationError | None:
    bad = [i for i in ids if i < 0 or i >= model.VOCAB_SIZE]
    if not bad:
        return None
    return VllmValidationError(
        f"token_id(s) {bad} in {name} contain out-of-vocab token ids. "
        f"Vocabulary size: {model.VOCAB_SIZE}",
        name,
        value=bad,
    )


def _engine_error(
    req: CompletionRequest, prompt: str | list[int], toks: list[str], max_model_len: int
) -> Exception | None:
    """InputProcessor.process_inputs: SamplingParams.verify, then the model inputs."""
    for name, count in (("sample", req.logprobs), ("prompt", req.prompt_logprobs)):
        wanted = model.VOCAB_SIZE if count == -1 else count
        if wanted and wanted > MAX_LOGPROBS:
            parameter = "logprobs" if name == "sample" else "prompt_logprobs"
            return VllmValidationError(
                f"Requested {name} logprobs of {wanted}, which is greater than max allowed: "
                f"{MAX_LOGPROBS}",
                parameter,
                value=wanted,
            )
    if req.logit_bias:
        error = _out_of_vocab("logit_bias", [int(k) for k in req.logit_bias])
        if error is not None:
            return error
    if req.stop_token_ids:
        error = _out_of_vocab("stop_token_ids", req.stop_token_ids)
        if error is not None:
            return error
    allowed = req.allowed_token_ids
    if allowed is not None and not allowed:
        return VllmValidationError(
            "allowed_token_ids is not None and empty!", "allowed_token_ids", value=[]
        )
    if allowed and (bad := [i for i in allowed if i < 0 or i >= model.VOCAB_SIZE]):
        return VllmValidationError(
            "allowed_token_ids contains out-of-vocab token id!", "allowed_token_ids", value=bad
        )
    if not toks:
        return VllmValidationError("The decoder prompt cannot be empty")
    if len(toks) > max_model_len:
        return VllmValidationError(
            f"The decoder prompt (length {len(toks)}) is longer than the maximum model "
            f"length of {max_model_len}. Make sure that `max_model_len` is no smaller "
            "than the number of text tokens."
        )
    if len(toks) == max_model_len:  # only reachable with echo and max_tokens 0
        return VllmValidationError(
            f"The decoder prompt (length {len(toks)}) plus the number of requested output "
            f"tokens (at least 1) is longer than the maximum model length of {max_model_len}. "
            "Make sure that `max_model_len` is no smaller than the number of text tokens "
            "(prompt + requested output tokens)."
        )
    if isinstance(prompt, list) and prompt and max(prompt) > model.VOCAB_SIZE - 1:
        return VllmValidationError(f"Token id {max(prompt)} is out of vocabulary")
    return None


def _answer(
    req: CompletionRequest, text: str, toks: list[str], max_tokens: int, echo_only: bool
) -> PromptAnswer:
    echo = model.prompt_echo(text)
    rf = req.response_format.model_dump(by_alias=True) if req.response_format else None
    json_text = model.json_answer(rf, echo.strip())
    answer = model.tokens(json_text if json_text is not None else echo)
    if echo_only:
        # vLLM generates one token it does not show (max_tokens 1): "length", unless
        # that token is the end of sequence or hits a stop string.
        if not answer:
            return PromptAnswer(text, toks, [], "stop", None, 0)
        _, matched = model.cut_before_stop(answer[:1], req.stop)
        return PromptAnswer(text, toks, [], "stop" if matched else "length", matched, 1)
    words, stop_reason = model.cut_before_stop(answer, req.stop)
    finish = "stop"
    if len(words) > max_tokens:
        words, finish, stop_reason = words[:max_tokens], "length", None
    return PromptAnswer(text, toks, words, finish, stop_reason, len(words))


def plan(
    req: CompletionRequest, served_model: str, max_model_len: int = model.MAX_MODEL_LEN
) -> VllmCompletionPlan:
    """The answer vLLM would give, or the error it raises (`ReturnedError`,
    `VllmValidationError`, ValueError) where it would raise it."""
    _serving_checks(req, served_model)
    max_input = _max_input_tokens(req, max_model_len)
    prompts = _prompts(req)
    if req.prompt_embeds is not None:
        # BaseRenderer._process_embeds, as vLLM runs without --enable-prompt-embeds.
        raise ValueError("You must set `--enable-prompt-embeds` to input `prompt_embeds`.")
    if not prompts:
        raise ValueError("You must pass at least one prompt")
    tokenized = [_tokenize(req, p, max_input, max_model_len) for p in prompts]
    echo_only = bool(req.echo) and req.max_tokens == 0
    answers, engine_error = [], None
    for prompt, (text, toks) in zip(prompts, tokenized, strict=True):
        # get_max_tokens: the request's limit, within what the context leaves.
        max_tokens = min(
            max_model_len - len(toks), 16 if req.max_tokens is None else req.max_tokens
        )
        _sampling_checks(req, 1 if echo_only else max_tokens)
        engine_error = engine_error or _engine_error(req, prompt, toks, max_model_len)
        answers.append(_answer(req, text, toks, max_tokens, echo_only))
    options = req.stream_options
    include_usage = bool(options and options.include_usage)
    prompt_logprobs = req.prompt_logprobs
    if prompt_logprobs is None and req.echo:
        prompt_logprobs = req.logprobs
    return VllmCompletionPlan(
        n=req.n,
        answers=answers,
        echo=bool(req.echo),
        echo_only=echo_only,
        logprobs=req.logprobs,
        prompt_logprobs=prompt_logprobs,
        stream=bool(req.stream),
        include_usage=include_usage,
        continuous_usage=include_usage and bool(options and options.continuous_usage_stats),
        engine_error=engine_error,
    )
