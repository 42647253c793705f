"""The Responses API request, translated for the chat pipeline: `to_chat` turns it
into a `ChatCompletionRequest` (input items -> messages, function tools -> chat
tools, `text.format` -> `response_format`, `max_output_tokens` -> `max_tokens`, ...).
The answer side is shapes/responses.py.

Nothing is stored: `previous_response_id`, `conversation`, `background` and stored
prompts or item references are refused with a 400 that names the field and says to
send the whole input (the OpenAI Agents SDK does by default)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import InvalidRequestError
from ..registry import Features
from ..schemas.chat import ChatCompletionRequest
from ..schemas.responses import (
    DROPPED_FIELDS,
    ContentPart,
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    MessageItem,
    ResponsesRequest,
)
from ..validation import validation_error

M = TypeVar("M", bound=BaseModel)
_STATELESS = (
    "This gateway is stateless: it stores no responses, conversations or prompts, so "
    "`{field}` cannot be used. Send the whole conversation in `input` (the OpenAI "
    "Agents SDK does so by default)."
)


def stateless_error(field_name: str, param: str | None = None) -> InvalidRequestError:
    return InvalidRequestError(
        _STATELESS.format(field=field_name),
        param=param or field_name,
        code="unsupported_parameter",
    )


def to_chat(req: ResponsesRequest, features: Features) -> ChatCompletionRequest:
    """The chat request the engine gets; a 400 naming the field for what the gateway
    or the model cannot do."""
    _refuse_state(req)
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    if isinstance(req.input, str):
        messages.append({"role": "user", "content": req.input})
    else:
        messages.extend(_messages(req.input, features))
    if not messages:
        raise InvalidRequestError("`input` holds no message to answer.", param="input")
    body: dict[str, Any] = {
        key: value for key, value in (req.model_extra or {}).items() if key not in DROPPED_FIELDS
    }
    body.update(messages=messages, model=req.model)
    tools = _tools(req.tools or [], features)
    if tools:
        body["tools"] = tools
        if req.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = req.parallel_tool_calls
    choice = _tool_choice(req.tool_choice, bool(tools))
    if choice is not None:
        body["tool_choice"] = choice
    response_format = _response_format(req)
    if response_format is not None:
        body["response_format"] = response_format
    effort = req.reasoning.effort if req.reasoning else None
    if effort is not None and features.reasoning:
        body["reasoning_effort"] = effort
    elif effort not in (None, "none"):
        raise InvalidRequestError(
            f"The model `{req.model}` does not reason; `reasoning.effort` is not supported "
            "with it.",
            param="reasoning.effort",
        )
    for ours, theirs in (
        ("max_output_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("user", "user"),
    ):
        value = getattr(req, ours)
        if value is not None:
            body[theirs] = value
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:  # an engine extra with a chat field's name, mistyped
        raise validation_error(exc.errors()) from None


def _refuse_state(req: ResponsesRequest) -> None:
    if req.previous_response_id is not None:
        raise stateless_error("previous_response_id")
    if req.conversation is not None:
        raise stateless_error("conversation")
    if req.prompt is not None:
        raise stateless_error("prompt")
    if req.background:
        raise InvalidRequestError(
            "This gateway is stateless: `background: true` would need the response "
            "stored for polling. Stream the response instead (`stream: true`).",
            param="background",
            code="unsupported_parameter",
        )


def _parse(model: type[M], raw: Any, path: Sequence[str | int]) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": (*path, *e["loc"])} for e in exc.errors()]
        raise validation_error(errors) from None


def _messages(items: list[dict[str, Any]], features: Features) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for n, raw in enumerate(items):
        kind = raw.get("type", "message" if "role" in raw else None)
        if kind == "message":
            messages.append(_message(_parse(MessageItem, raw, ("input", n)), n, features))
        elif kind == "function_call":
            call = _parse(FunctionCallItem, raw, ("input", n))
            tool_call = {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                # One assistant turn: its text and the calls it made.
                last.setdefault("tool_calls", []).append(tool_call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [tool_call]})
        elif kind == "function_call_output":
            result = _parse(FunctionCallOutputItem, raw, ("input", n))
            content = _plain_text(result.output, f"input.{n}.output")
            messages.append({"role": "tool", "tool_call_id": result.call_id, "content": content})
        elif kind == "reasoning":
            continue  # the engine re-thinks; chat templates drop past reasoning anyway
        elif kind == "item_reference":
            raise stateless_error("item_reference", param=f"input.{n}")
        elif kind is None:
            raise InvalidRequestError(
                "Each input item needs a `type` (or a `role`, for a message).",
                param=f"input.{n}.type",
            )
        else:
            raise InvalidRequestError(
                f"Input items of type `{kind}` are not supported: the gateway runs "
                "function tools only (message, function_call, function_call_output and "
                "reasoning items).",
                param=f"input.{n}.type",
            )
    return messages


def _message(item: MessageItem, n: int, features: Features) -> dict[str, Any]:
    path = f"input.{n}.content"
    if item.role == "assistant":
        return {"role": "assistant", "content": _plain_text(item.content, path)}
    if isinstance(item.content, str):
        return {"role": item.role, "content": item.content}
    parts = []
    for p, part in enumerate(item.content):
        where = f"{path}.{p}"
        if part.type in ("input_text", "output_text"):
            parts.append({"type": "text", "text": _text_of(part, where)})
        elif part.type == "input_image":
            parts.append(_image(part, where, features))
        else:
            raise _unsupported_part(part, where)
    return {"role": item.role, "content": parts}


def _image(part: ContentPart, where: str, features: Features) -> dict[str, Any]:
    if part.file_id is not None:
        raise InvalidRequestError(
            "Images by `file_id` need OpenAI's file storage, which this gateway does not "
            "have; send the image as `image_url` (an https or data: URL).",
            param=f"{where}.file_id",
        )
    if not part.image_url:
        raise InvalidRequestError("An `input_image` needs an `image_url`.", param=where)
    if not features.vision:
        raise InvalidRequestError("The model does not accept images.", param=where)
    url: dict[str, Any] = {"url": part.image_url}
    if part.detail is not None:
        url["detail"] = part.detail
    return {"type": "image_url", "image_url": url}


def _plain_text(content: str | list[ContentPart], path: str) -> str:
    """Assistant history and tool results as one string (every engine takes that)."""
    if isinstance(content, str):
        return content
    texts = []
    for p, part in enumerate(content):
        where = f"{path}.{p}"
        if part.type in ("output_text", "input_text"):
            texts.append(_text_of(part, where))
        elif part.type == "refusal":
            texts.append(part.refusal or "")
        else:
            raise _unsupported_part(part, where)
    return "".join(texts)


def _text_of(part: ContentPart, where: str) -> str:
    if part.text is None:
        raise InvalidRequestError(f"A `{part.type}` part needs `text`.", param=f"{where}.text")
    return part.text


def _unsupported_part(part: ContentPart, where: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Content parts of type `{part.type}` are not supported here (text, and images "
        "in user messages, are).",
        param=f"{where}.type",
    )


def _tools(tools: list[dict[str, Any]], features: Features) -> list[dict[str, Any]]:
    chat_tools = []
    for n, raw in enumerate(tools):
        kind = raw.get("type")
        if kind != "function":
            raise InvalidRequestError(
                f"The tool type `{kind}` is a built-in OpenAI tool, which this gateway "
                "does not run; only `function` tools are supported (run the tool "
                "yourself and send its result back as a `function_call_output`).",
                param=f"tools.{n}.type",
            )
        tool = _parse(FunctionTool, raw, ("tools", n))
        function = tool.model_dump(
            include={"name", "description", "parameters", "strict"}, exclude_none=True
        )
        chat_tools.append({"type": "function", "function": function})
    if chat_tools and not features.tools:
        raise InvalidRequestError("The model does not support tools.", param="tools")
    return chat_tools


def _tool_choice(choice: str | dict[str, Any] | None, has_tools: bool) -> Any:
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise InvalidRequestError(
                "`tool_choice` must be auto, none, required or a function.", param="tool_choice"
            )
        if not has_tools:
            if choice == "required":
                raise InvalidRequestError(
                    "`tool_choice: required` needs `tools`.", param="tool_choice"
                )
            return None  # nothing to choose from: the engine would refuse the pair
        return choice
    kind = choice.get("type")
    if kind != "function":
        raise InvalidRequestError(
            f"`tool_choice` of type `{kind}` is not supported: the gateway runs function "
            "tools only.",
            param="tool_choice.type",
        )
    name = choice.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(
            "A function `tool_choice` needs a `name`.", param="tool_choice.name"
        )
    if not has_tools:
        raise InvalidRequestError(
            f"`tool_choice` names `{name}` but no tools were given.", param="tool_choice"
        )
    return {"type": "function", "function": {"name": name}}


def _response_format(req: ResponsesRequest) -> dict[str, Any] | None:
    fmt = req.text.format if req.text else None
    kind = (fmt or {}).get("type", "text")
    if fmt is None or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        raise InvalidRequestError(
            "`text.format.type` must be text, json_object or json_schema.",
            param="text.format.type",
        )
    name, schema = fmt.get("name"), fmt.get("schema")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError("A json_schema format needs a `name`.", param="text.format.name")
    if not isinstance(schema, dict):
        raise InvalidRequestError(
            "A json_schema format needs a `schema` object.", param="text.format.schema"
        )
    spec = {"name": name, "schema": schema}
    for optional in ("description", "strict"):
        if fmt.get(optional) is not None:
            spec[optional] = fmt[optional]
    return {"type": "json_schema", "json_schema": spec}
