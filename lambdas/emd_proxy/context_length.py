"""A prompt longer than the model's context, in any engine's words -> one 400 the caller
can act on: `code: "context_length_exceeded"`, the model's limit and the prompt's size.

The engines' texts (matched anywhere in the container's error, whatever its status and
framing: vLLM's JSON, TGI's `{"error", "error_type"}`, LMI's mangled repr inside Gson,
llama.cpp's message):
- vLLM >= 0.11 (vllm/renderers/params.py `TokenizeParams._token_len_check` and
  `_text_len_check`, `__post_init__`): "You passed {n} input tokens and requested {m}
  output tokens. However, the model's context length is only {L} tokens, resulting in
  a maximum input length of {L-m} tokens. Please reduce the length of the input
  prompt."; the same with "input characters" (the prompt refused before tokenizing);
  "max_tokens={m}cannot be greater than max_model_len=max_total_tokens={L}. ...";
- vLLM engine (v1/engine/input_processor.py): "The decoder prompt (length {n}) is
  longer than the maximum model length of {L}. ...";
- older vLLM (entrypoints/openai/serving_engine.py `_validate_input`): "This model's
  maximum context length is {L} tokens. However, you requested {n+m} tokens ({n} in
  the messages, {m} in the completion). ..." and "... However, your request has {n}
  input tokens. ..." and "'max_tokens' or 'max_completion_tokens' is too large: {m}.
  This model's maximum context length is {L} tokens and your request has {n} input
  tokens ({m} > {L} - {n}). ...";
- TGI (router/src/validation.rs `ValidationError`): "`inputs` tokens + `max_new_tokens`
  must be <= {L}. Given: {n} `inputs` tokens and {m} `max_new_tokens`" and "`inputs`
  must have less than {L} tokens. Given: {n}";
- DJL LMI (async mode) serves chat with vLLM's OpenAI server: vLLM's texts;
- llama.cpp (tools/server/server-context.cpp): "request ({n} tokens) exceeds the
  available context size ({L} tokens), try increasing it", older builds "the request
  exceeds the available context size, try increasing it" (the caller cannot increase
  it: the message is replaced)."""

from __future__ import annotations

import re
from collections.abc import Callable

from .errors import InvalidRequestError

CODE = "context_length_exceeded"
_SHORTEN = "Shorten the messages (or the prompt)"


def _prompt_and_answer(limit: int, prompt: int, answer: int) -> str:
    if answer > 0:
        return (
            f"This model's maximum context length is {limit} tokens; your prompt has {prompt} "
            f"tokens and {answer} more were requested for the answer (max_tokens), "
            f"{prompt + answer} in all. {_SHORTEN}, or lower max_tokens."
        )
    return (
        f"This model's maximum context length is {limit} tokens; your prompt has {prompt} "
        f"tokens. {_SHORTEN}."
    )


def _vllm_tokens(m: re.Match[str]) -> InvalidRequestError:
    prompt, answer, limit = int(m[1]), int(m[2]), int(m[3])
    return _error(_prompt_and_answer(limit, prompt, answer))


def _vllm_characters(m: re.Match[str]) -> InvalidRequestError:
    chars, answer, limit, max_input = int(m[1]), int(m[2]), int(m[3]), int(m[4])
    room = f" ({max_input} left for the prompt after the {answer} requested for the answer)"
    return _error(
        f"This model's maximum context length is {limit} tokens"
        f"{room if answer else ''}; your prompt has {chars} characters, far more than fit. "
        f"{_SHORTEN}{', or lower max_tokens' if answer else ''}."
    )


def _vllm_max_output(m: re.Match[str]) -> InvalidRequestError:
    param, answer, limit = m[1], int(m[2]), int(m[3])
    return _error(
        f"This model's maximum context length is {limit} tokens, but {param} asks for "
        f"{answer} tokens for the answer alone. Lower {param}.",
        param=param,
    )


def _vllm_old_requested(m: re.Match[str]) -> InvalidRequestError:
    limit, prompt, answer = int(m[1]), int(m[3]), int(m[4])
    return _error(_prompt_and_answer(limit, prompt, answer))


def _vllm_too_large(m: re.Match[str]) -> InvalidRequestError:
    answer, limit, prompt = int(m[1]), int(m[2]), int(m[3])
    return _error(_prompt_and_answer(limit, prompt, answer))


def _prompt_over(
    limit_group: int, prompt_group: int
) -> Callable[[re.Match[str]], InvalidRequestError]:
    def build(m: re.Match[str]) -> InvalidRequestError:
        return _error(_prompt_and_answer(int(m[limit_group]), int(m[prompt_group]), 0))

    return build


def _tgi_total(m: re.Match[str]) -> InvalidRequestError:
    limit, prompt, answer = int(m[1]), int(m[2]), int(m[3])
    return _error(_prompt_and_answer(limit, prompt, answer))


def _tgi_input(m: re.Match[str]) -> InvalidRequestError:
    limit, prompt = int(m[1]), int(m[2])
    return _error(
        f"This model takes prompts of fewer than {limit} tokens; your prompt has {prompt} "
        f"tokens. {_SHORTEN}."
    )


def _llamacpp_old(_: re.Match[str]) -> InvalidRequestError:
    return _error(f"The prompt is longer than this model's maximum context length. {_SHORTEN}.")


_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], InvalidRequestError]]] = [
    (
        re.compile(
            r"You passed (\d+) input tokens and requested (\d+) output tokens\. However, "
            r"the model's context length is only (\d+) tokens"
        ),
        _vllm_tokens,
    ),
    (
        re.compile(
            r"You passed (\d+) input characters and requested (\d+) output tokens\. However, "
            r"the model's context length is only (\d+) tokens, resulting in a maximum input "
            r"length of (\d+) tokens"
        ),
        _vllm_characters,
    ),
    (
        re.compile(
            r"(max_tokens|max_completion_tokens)=(\d+)\s*cannot be greater than "
            r"max_model_len=(?:max_total_tokens=)?(\d+)"
        ),
        _vllm_max_output,
    ),
    (
        re.compile(
            r"This model's maximum context length is (\d+) tokens\. However, you requested "
            r"(\d+) tokens \((\d+) in the messages, (\d+) in the completion\)"
        ),
        _vllm_old_requested,
    ),
    (
        re.compile(
            r"This model's maximum context length is (\d+) tokens\. However, your request "
            r"has (\d+) input tokens"
        ),
        _prompt_over(1, 2),
    ),
    (
        re.compile(
            r"is too large: (\d+)\. This model's maximum context length is (\d+) tokens and "
            r"your request has (\d+) input tokens"
        ),
        _vllm_too_large,
    ),
    (
        re.compile(
            r"The decoder prompt \(length (\d+)\) is longer than the maximum model length "
            r"of (\d+)"
        ),
        _prompt_over(2, 1),
    ),
    (
        re.compile(
            r"`inputs` tokens \+ `max_new_tokens` must be <= (\d+)\. Given: (\d+) `inputs` "
            r"tokens and (\d+) `max_new_tokens`"
        ),
        _tgi_total,
    ),
    (re.compile(r"`inputs` must have less than (\d+) tokens\. Given: (\d+)"), _tgi_input),
    (
        re.compile(r"request \((\d+) tokens\) exceeds the available context size \((\d+) tokens\)"),
        _prompt_over(2, 1),
    ),
    (re.compile(r"the request exceeds the available context size"), _llamacpp_old),
]


def _error(message: str, param: str | None = None) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=CODE)


def context_overflow(text: str) -> InvalidRequestError | None:
    """The 400 for an engine's context-length refusal found in `text`, else None."""
    if not text:
        return None
    for pattern, build in _PATTERNS:
        if match := pattern.search(text):
            return build(match)
    return None
