"""vLLM's context-length check of a chat prompt, as the local vLLM-contract containers
answer it.

vllm-project/vllm vllm/renderers/params.py (`TokenizeParams`: `max_total_tokens` is
the model's `max_model_len`, `max_output_tokens` the request's `max_completion_tokens`
or `max_tokens`, 0 when unset; `_token_len_check`): a prompt longer than
`max_model_len - max_output_tokens` is refused with this VLLMValidationError
(`parameter="input_tokens"`). The chat serving returns it as an ErrorResponse, a 400
(vLLM's route; LMI's formatter mangles it, see lmi.py)."""

from __future__ import annotations

from typing import Any

from .vllm_request import VllmValidationError


def requested_output(body: Any) -> tuple[int, str]:
    """(`max_completion_tokens`, else `max_tokens`, else 0; the field's name), as
    vLLM's `build_tok_params` takes them."""
    if not isinstance(body, dict):
        return 0, "max_tokens"
    param = (
        "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    )
    limit = body.get(param)
    return (limit if isinstance(limit, int) and limit > 0 else 0), param


def context_error(prompt_tokens: int, body: Any, max_model_len: int) -> VllmValidationError | None:
    """The error vLLM gives a chat `body` whose prompt has `prompt_tokens`, or None."""
    max_output_tokens, output_param = requested_output(body)
    if max_output_tokens > max_model_len:
        # TokenizeParams.__post_init__ (the odd spacing and `=` are vLLM's f-string).
        return VllmValidationError(
            f"{output_param}={max_output_tokens}cannot be greater than "
            f"max_model_len=max_total_tokens={max_model_len}. Please request fewer output "
            "tokens.",
            output_param,
            value=max_output_tokens,
        )
    max_input = max_model_len - max_output_tokens
    if prompt_tokens <= max_input:
        return None
    return VllmValidationError(
        f"You passed {prompt_tokens} input tokens and requested {max_output_tokens} output "
        f"tokens. However, the model's context length is only {max_model_len} tokens, "
        f"resulting in a maximum input length of {max_input} tokens. Please reduce the "
        "length of the input prompt.",
        "input_tokens",
        value=prompt_tokens,
    )
