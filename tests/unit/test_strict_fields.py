"""Strict types and the engines' integer bounds on every request schema (issue 17.6):
OpenAI refuses `"max_tokens": "10"` and `"stream": "yes"`, and an integer past an
engine's limit (10**30) is a 400 naming the field, never an engine's overflow."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from emd_proxy.errors import InvalidRequestError
from emd_proxy.registry import Features
from emd_proxy.schemas.chat import ChatCompletionRequest
from emd_proxy.schemas.completions import CompletionRequest
from emd_proxy.schemas.embeddings import EmbeddingsRequest
from emd_proxy.schemas.invocations import InvocationsRequest
from emd_proxy.schemas.limits import INT32_MAX, INT64_MAX, INT64_MIN, UINT32_MAX
from emd_proxy.schemas.messages import CountTokensRequest, MessagesRequest
from emd_proxy.schemas.rerank import RerankRequest
from emd_proxy.schemas.responses import ResponsesRequest
from emd_proxy.shapes.anthropic_request import to_chat_request
from emd_proxy.shapes.responses_input import to_chat
from emd_proxy.validation import validation_error

HI = [{"role": "user", "content": "hi"}]
BASES: dict[type[BaseModel], dict[str, Any]] = {
    ChatCompletionRequest: {"model": "m", "messages": HI},
    CompletionRequest: {"model": "m", "prompt": "hi"},
    ResponsesRequest: {"model": "m", "input": "hi"},
    MessagesRequest: {"model": "m", "messages": HI, "max_tokens": 5},
    CountTokensRequest: {"model": "m", "messages": HI},
    EmbeddingsRequest: {"model": "m", "input": "hi"},
    RerankRequest: {"model": "m", "query": "q", "documents": ["d"]},
    InvocationsRequest: {"model": "m", "input": {}},
}


def refusal(schema: type[BaseModel], **fields: Any) -> InvalidRequestError:
    """The 400 a client gets for the base request of `schema` with `fields`."""
    try:
        schema.model_validate({**BASES[schema], **fields})
    except ValidationError as exc:
        return validation_error(exc.errors())
    except InvalidRequestError as exc:  # raised by a model validator itself
        return exc
    raise AssertionError(f"{schema.__name__} accepted {fields}")


def accepted(schema: type[BaseModel], **fields: Any) -> Any:
    return schema.model_validate({**BASES[schema], **fields})


# (schema, field, a value of the wrong JSON type, what OpenAI says was expected, got)
WRONG_TYPES = [
    (ChatCompletionRequest, "max_tokens", "10", "an integer", "a string"),
    (ChatCompletionRequest, "max_tokens", 10.0, "an integer", "a decimal"),
    (ChatCompletionRequest, "max_completion_tokens", True, "an integer", "a boolean"),
    (ChatCompletionRequest, "stream", "yes", "a boolean", "a string"),
    (ChatCompletionRequest, "stream", 1, "a boolean", "an integer"),
    (ChatCompletionRequest, "logprobs", "true", "a boolean", "a string"),
    (ChatCompletionRequest, "parallel_tool_calls", 0, "a boolean", "an integer"),
    (ChatCompletionRequest, "n", "2", "an integer", "a string"),
    (ChatCompletionRequest, "seed", "42", "an integer", "a string"),
    (ChatCompletionRequest, "top_logprobs", "2", "an integer", "a string"),
    (ChatCompletionRequest, "top_k", "5", "an integer", "a string"),
    (ChatCompletionRequest, "temperature", "0.5", "a decimal", "a string"),
    (ChatCompletionRequest, "top_p", True, "a decimal", "a boolean"),
    (ChatCompletionRequest, "frequency_penalty", "1", "a decimal", "a string"),
    (CompletionRequest, "max_tokens", "10", "an integer", "a string"),
    (CompletionRequest, "echo", "yes", "a boolean", "a string"),
    (CompletionRequest, "logprobs", "1", "an integer", "a string"),
    (CompletionRequest, "stream", "yes", "a boolean", "a string"),
    (CompletionRequest, "best_of", 2.0, "an integer", "a decimal"),
    (ResponsesRequest, "max_output_tokens", "10", "an integer", "a string"),
    (ResponsesRequest, "stream", "yes", "a boolean", "a string"),
    (ResponsesRequest, "store", "no", "a boolean", "a string"),
    (ResponsesRequest, "top_logprobs", "2", "an integer", "a string"),
    (ResponsesRequest, "temperature", "1", "a decimal", "a string"),
    (MessagesRequest, "max_tokens", "10", "an integer", "a string"),
    (MessagesRequest, "stream", "yes", "a boolean", "a string"),
    (MessagesRequest, "top_k", "5", "an integer", "a string"),
    (MessagesRequest, "temperature", "0.5", "a decimal", "a string"),
    (EmbeddingsRequest, "dimensions", "256", "an integer", "a string"),
    (RerankRequest, "top_n", "3", "an integer", "a string"),
    (RerankRequest, "return_documents", "yes", "a boolean", "a string"),
    (InvocationsRequest, "stream", "yes", "a boolean", "a string"),
]


@pytest.mark.parametrize(
    ("schema", "field", "value", "expected", "got"),
    WRONG_TYPES,
    ids=[f"{s.__name__}.{f}={v!r}" for s, f, v, *_ in WRONG_TYPES],
)
def test_a_value_of_the_wrong_type_is_openais_invalid_type(
    schema: type[BaseModel], field: str, value: Any, expected: str, got: str
) -> None:
    error = refusal(schema, **{field: value})
    assert (error.status, error.param, error.code) == (400, field, "invalid_type")
    assert error.message == (
        f"Invalid type for '{field}': expected {expected}, but got {got} instead."
    )


# (schema, field, the largest value taken, the smallest one taken)
BOUNDS = [
    (ChatCompletionRequest, "max_tokens", UINT32_MAX, 1),
    (ChatCompletionRequest, "max_completion_tokens", UINT32_MAX, 1),
    (ChatCompletionRequest, "seed", INT64_MAX, INT64_MIN),
    (ChatCompletionRequest, "top_k", INT32_MAX, -1),
    (ChatCompletionRequest, "n", 128, 1),
    (CompletionRequest, "max_tokens", UINT32_MAX, 0),
    (CompletionRequest, "seed", INT64_MAX, INT64_MIN),
    (CompletionRequest, "top_k", INT32_MAX, -1),
    (ResponsesRequest, "max_output_tokens", UINT32_MAX, 1),
    (ResponsesRequest, "max_tool_calls", UINT32_MAX, 0),
    (MessagesRequest, "max_tokens", UINT32_MAX, 1),
    (MessagesRequest, "top_k", INT32_MAX, 0),
    (EmbeddingsRequest, "dimensions", UINT32_MAX, 1),
    (RerankRequest, "top_n", UINT32_MAX, 1),
]


@pytest.mark.parametrize(
    ("schema", "field", "high", "low"),
    BOUNDS,
    ids=[f"{s.__name__}.{f}" for s, f, *_ in BOUNDS],
)
def test_integers_are_bounded_at_the_engines_limits(
    schema: type[BaseModel], field: str, high: int, low: int
) -> None:
    assert getattr(accepted(schema, **{field: high}), field) == high
    assert getattr(accepted(schema, **{field: low}), field) == low
    above = refusal(schema, **{field: high + 1})
    assert (above.param, above.code) == (field, "integer_above_max_value")
    assert above.message == (
        f"Invalid '{field}': integer above maximum value. Expected a value <= {high}, "
        f"but got {high + 1} instead."
    )
    below = refusal(schema, **{field: low - 1})
    assert (below.param, below.code) == (field, "integer_below_min_value")


def test_top_logprobs_is_bounded_too() -> None:
    assert accepted(ChatCompletionRequest, logprobs=True, top_logprobs=UINT32_MAX)
    error = refusal(ChatCompletionRequest, logprobs=True, top_logprobs=10**30)
    assert (error.param, error.code) == ("top_logprobs", "integer_above_max_value")


def test_the_issues_ten_to_the_thirty_is_a_400_naming_the_field() -> None:
    for field in ("max_tokens", "seed", "n", "top_k", "max_completion_tokens"):
        error = refusal(ChatCompletionRequest, **{field: 10**30})
        assert (error.param, error.code) == (field, "integer_above_max_value")
        assert "but got 1e+30 instead" in error.message


def test_floats_take_json_integers_and_keep_their_decimal_bounds() -> None:
    request = accepted(ChatCompletionRequest, temperature=1, top_p=1, frequency_penalty=-2)
    assert (request.temperature, request.top_p) == (1.0, 1.0)
    assert accepted(MessagesRequest, temperature=0).temperature == 0.0
    error = refusal(ChatCompletionRequest, top_p=2)
    assert (error.param, error.code) == ("top_p", "decimal_above_max_value")
    assert error.message == (
        "Invalid 'top_p': decimal above maximum value. Expected a value <= 1, but got 2 instead."
    )
    assert refusal(ResponsesRequest, temperature=-0.5).code == "decimal_below_min_value"


def test_nested_known_fields_are_strict_too() -> None:
    error = refusal(ChatCompletionRequest, stream=True, stream_options={"include_usage": "yes"})
    assert (error.param, error.code) == ("stream_options.include_usage", "invalid_type")
    error = refusal(ChatCompletionRequest, logit_bias={"50256": "-100"})
    assert (error.param, error.code) == ("logit_bias.50256", "invalid_type")
    assert accepted(ChatCompletionRequest, logit_bias={"50256": -100}).logit_bias == {
        "50256": -100.0
    }
    error = refusal(MessagesRequest, thinking={"type": "enabled", "budget_tokens": "1024"})
    assert (error.param, error.code) == ("thinking.budget_tokens", "invalid_type")
    error = refusal(
        MessagesRequest, tool_choice={"type": "auto", "disable_parallel_tool_use": "yes"}
    )
    assert error.param == "tool_choice.disable_parallel_tool_use"


def test_an_engine_extra_beyond_int64_is_a_400_and_other_extras_pass() -> None:
    for schema in (ChatCompletionRequest, CompletionRequest, EmbeddingsRequest, RerankRequest):
        error = refusal(schema, min_tokens=10**30)
        assert (error.param, error.code) == ("min_tokens", "integer_above_max_value")
        error = refusal(schema, min_tokens=-(10**30))
        assert (error.param, error.code) == ("min_tokens", "integer_below_min_value")
    extras = {"min_tokens": INT64_MAX, "repetition_penalty": 1.1, "ignore_eos": True}
    assert accepted(ChatCompletionRequest, **extras).model_extra == extras
    # Extras are the engine's to type: strings pass as they are.
    assert accepted(ChatCompletionRequest, min_tokens="5").model_extra == {"min_tokens": "5"}


def test_responses_and_messages_extras_are_checked_as_chat_fields() -> None:
    """Both translate to a chat request; an extra with a chat field's name (`seed`)
    keeps the chat field's type and bounds."""
    for schema in (ResponsesRequest, MessagesRequest):
        error = refusal(schema, seed=10**30)
        assert (error.param, error.code) == ("seed", "integer_above_max_value")
    with pytest.raises(InvalidRequestError) as info:
        to_chat(accepted(ResponsesRequest, seed="5"), Features())
    assert (info.value.param, info.value.code) == ("seed", "invalid_type")
    with pytest.raises(InvalidRequestError) as info:
        to_chat_request(accepted(MessagesRequest, logprobs="yes"), reasoning=False)
    assert (info.value.param, info.value.code) == ("logprobs", "invalid_type")
    chat = to_chat(accepted(ResponsesRequest, seed=7, top_k=3), Features())
    assert (chat.seed, chat.top_k) == (7, 3)


def test_json_bodies_are_as_strict_as_python_ones() -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate_json(
            '{"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}'
        )
    assert validation_error(info.value.errors()).code == "invalid_type"
