"""context_length.py: every engine's context-overflow text -> 400 context_length_exceeded
with the limit and the prompt's size (sources in the module's docstring)."""

from __future__ import annotations

import json

import pytest

from emd_proxy.context_length import context_overflow
from emd_proxy.upstream_json import load_json_object

VLLM = (
    "You passed 3000 input tokens and requested 100 output tokens. However, the model's "
    "context length is only 2048 tokens, resulting in a maximum input length of 1948 "
    "tokens. Please reduce the length of the input prompt. (parameter=input_tokens, "
    "value=3000)"
)
CASES = [
    # (engine text, numbers the message must carry, param)
    (VLLM, ["2048", "3000", "100"], None),
    (
        "You passed 90000 input characters and requested 0 output tokens. However, the "
        "model's context length is only 2048 tokens, resulting in a maximum input length of "
        "2048 tokens (at most 81920 characters). Please reduce the length of the input prompt.",
        ["2048", "90000 characters"],
        None,
    ),
    (
        "max_tokens=5000cannot be greater than max_model_len=max_total_tokens=2048. Please "
        "request fewer output tokens.",
        ["2048", "5000"],
        "max_tokens",
    ),
    (
        "This model's maximum context length is 4096 tokens. However, you requested 5021 "
        "tokens (4509 in the messages, 512 in the completion). Please reduce the length of "
        "the messages or completion.",
        ["4096", "4509", "512"],
        None,
    ),
    (
        "This model's maximum context length is 32768 tokens. However, your request has "
        "40000 input tokens. Please reduce the length of the input messages.",
        ["32768", "40000"],
        None,
    ),
    (
        "'max_tokens' or 'max_completion_tokens' is too large: 1000. This model's maximum "
        "context length is 2048 tokens and your request has 1500 input tokens (1000 > 2048 "
        "- 1500).",
        ["2048", "1500", "1000"],
        None,
    ),
    (
        "The decoder prompt (length 9000) is longer than the maximum model length of 8192. "
        "Make sure that `max_model_len` is no smaller than the number of text tokens.",
        ["8192", "9000"],
        None,
    ),
    (
        "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: "
        "4000 `inputs` tokens and 500 `max_new_tokens`",
        ["4096", "4000", "500"],
        None,
    ),
    (
        "Input validation error: `inputs` must have less than 4095 tokens. Given: 5000",
        ["4095", "5000"],
        None,
    ),
    (
        "request (431 tokens) exceeds the available context size (256 tokens), try "
        "increasing it",
        ["256", "431"],
        None,
    ),
    ("the request exceeds the available context size, try increasing it", [], None),
    # LMI's formatter: vLLM's ErrorResponse as a repr inside Gson.
    (
        json.dumps({"error": f"error=ErrorInfo(message='{VLLM}', type='BadRequestError', "
                    "param='input_tokens', code=400)", "code": 500}),
        ["2048", "3000"],
        None,
    ),
]  # fmt: skip


@pytest.mark.parametrize(("text", "numbers", "param"), CASES)
def test_each_engines_text_is_context_length_exceeded(text, numbers, param) -> None:
    error = context_overflow(text)
    assert error is not None
    assert error.status == 400
    assert error.code == "context_length_exceeded"
    assert error.type == "invalid_request_error"
    assert error.param == param
    for number in numbers:
        assert number in error.message
    assert "try increasing" not in error.message
    assert "maximum context length" in error.message or "fewer than" in error.message


def test_vllm_message_reads_as_the_brief_asks() -> None:
    error = context_overflow(VLLM)
    assert error is not None
    assert error.message.startswith(
        "This model's maximum context length is 2048 tokens; your prompt has 3000 tokens"
    )


@pytest.mark.parametrize(
    "text", ["", "`top_p` must be > 0.0 and < 1.0", "The model `x` does not exist."]
)
def test_other_errors_are_not_context_errors(text) -> None:
    assert context_overflow(text) is None


def test_in_a_stream_or_200_answer_too() -> None:
    tgi = {
        "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= "
        "4096. Given: 4000 `inputs` tokens and 500 `max_new_tokens`",
        "error_type": "validation",
    }
    with pytest.raises(Exception) as info:
        load_json_object(json.dumps(tgi).encode(), "stream chunk")
    assert getattr(info.value, "code", None) == "context_length_exceeded"
