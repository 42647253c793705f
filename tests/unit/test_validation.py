from __future__ import annotations

import pytest
from pydantic import ValidationError

from emd_proxy.errors import InvalidRequestError
from emd_proxy.schemas.chat import ChatCompletionRequest
from emd_proxy.validation import field_path, validation_error

HI = [{"role": "user", "content": "hi"}]


def errors_for(body: dict) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate(body)
    return info.value.errors()


def error_for(body: dict) -> InvalidRequestError:
    return validation_error(errors_for(body))


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        (("body", "messages", 0, "role"), "messages.0.role"),
        (("messages", 0, "content", "str"), "messages.0.content"),
        (("messages", 0, "content", "list[ContentPart]", 2, "type"), "messages.0.content.2.type"),
        (("stop", "list[str]", 1), "stop.1"),
        (("body", "temperature", "function-after[check(), float]"), "temperature"),
        (("body", "x", "json-or-python[json=int,python=int]"), "x"),
        (("tool_choice", "dict[str,any]"), "tool_choice"),
        (("body",), None),
        ((), None),
    ],
)
def test_field_path(loc, expected) -> None:
    assert field_path(loc) == expected


def test_invalid_role() -> None:
    error = error_for({"model": "m", "messages": [{"role": "robot", "content": "x"}]})
    assert error.param == "messages.0.role"
    assert error.status == 400
    assert "'messages.0.role'" in error.message


@pytest.mark.parametrize("content", [5, {"text": "x"}, True])
def test_content_of_the_wrong_type_names_the_field_without_union_tags(content) -> None:
    error = error_for({"model": "m", "messages": [{"role": "user", "content": content}]})
    assert error.param == "messages.0.content"
    assert "str" not in error.param.split(".")
    assert "[" not in error.message.split(":")[0]  # no `list[...]` in the field name
    assert "more errors" in error.message  # both union members failed


def test_a_bad_content_part_is_named_precisely() -> None:
    error = error_for(
        {"model": "m", "messages": [{"role": "user", "content": [{"text": "no type"}]}]}
    )
    assert error.param == "messages.0.content.0.type"


def test_fastapi_style_locations_start_with_body() -> None:
    errors = errors_for({"model": "m", "messages": [{"role": "user", "content": 5}]})
    as_fastapi = [{**e, "loc": ("body", *e["loc"])} for e in errors]
    assert validation_error(as_fastapi).param == "messages.0.content"


def test_temperature_out_of_range() -> None:
    """Negative is wrong everywhere; above OpenAI's 2 is the engine's call (vLLM
    takes it)."""
    error = error_for({"model": "m", "messages": HI, "temperature": -1})
    assert error.param == "temperature"
    assert "more errors" not in error.message
    ChatCompletionRequest.model_validate({"model": "m", "messages": HI, "temperature": 5})


def test_nan_temperature_is_rejected() -> None:
    error = error_for({"model": "m", "messages": HI, "temperature": float("nan")})
    assert error.param == "temperature"
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate_json(
            '{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}'
        )


def test_infinite_penalty_is_rejected() -> None:
    assert error_for({"model": "m", "messages": HI, "top_p": float("inf")}).param == "top_p"


def test_empty_messages() -> None:
    assert error_for({"model": "m", "messages": []}).param == "messages"


def test_missing_model() -> None:
    error = error_for({"messages": HI})
    assert error.param == "model"
    assert "Field required" in error.message


def test_stop_list_item() -> None:
    assert error_for({"model": "m", "messages": HI, "stop": ["a", 7]}).param.startswith("stop")


def test_invalid_json_has_openais_message_and_no_param() -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate_json('{"messages":')
    error = validation_error(info.value.errors())
    assert error.param is None
    assert "could not parse the JSON body" in error.message


def test_missing_body() -> None:
    error = validation_error([{"type": "missing", "loc": ("body",), "msg": "Field required"}])
    assert error.param is None
    assert "body is missing" in error.message


def test_no_errors_still_gives_a_400() -> None:
    error = validation_error([])
    assert isinstance(error, InvalidRequestError)
    assert error.status == 400


def test_extra_fields_are_kept() -> None:
    request = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": HI, "top_k": 5, "repetition_penalty": 1.1}
    )
    assert request.model_dump(exclude_unset=True)["top_k"] == 5
