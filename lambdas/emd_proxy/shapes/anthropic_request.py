"""Anthropic's Messages API requests: translated into the `ChatCompletionRequest`
every chat engine takes (system prompt, text, images, tool_use and tool_result blocks,
tools and tool_choice, stop sequences, sampling, thinking), and count_tokens'
estimate. Pure functions; the answer side is anthropic.py."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from ..errors import InvalidRequestError
from ..schemas.chat import ChatCompletionRequest
from ..schemas.messages import (
    CountTokensRequest,
    ImageBlockParam,
    MessageParam,
    MessagesRequest,
    TextBlockParam,
    ToolResultBlockParam,
)
from ..validation import validation_error
from ..vectors import estimate_tokens

# Anthropic-only request fields no engine understands: accepted, not passed on (other
# unknown fields are engine extras and go to the engine, as on chat completions).
_ANTHROPIC_ONLY = frozenset(
    {
        "betas",
        "cache_control",
        "container",
        "context_management",
        "diagnostics",
        "inference_geo",
        "mcp_servers",
        "output_config",
        "service_tier",
        "speed",
        "user_profile_id",
        "workspace_id",
    }
)
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def to_chat_request(req: MessagesRequest, *, reasoning: bool) -> ChatCompletionRequest:
    """The chat request the engines take. `reasoning`: the model can think (its
    registry features), so `thinking` switches it on or off through the chat
    template (Qwen3's `enable_thinking`); other models ignore `thinking`."""
    body: dict[str, Any] = {
        key: value for key, value in (req.model_extra or {}).items() if key not in _ANTHROPIC_ONLY
    }
    body |= {"model": req.model, "messages": chat_messages(req), "max_tokens": req.max_tokens}
    if req.stop_sequences:
        body["stop"] = list(req.stop_sequences)
    for name in ("temperature", "top_p", "top_k", "stream"):
        if getattr(req, name) is not None:
            body[name] = getattr(req, name)
    body |= _tools(req)
    if reasoning and req.thinking is not None:
        kwargs = dict(body.get("chat_template_kwargs") or {})
        # An explicit chat_template_kwargs (an engine extra) wins.
        kwargs.setdefault("enable_thinking", req.thinking.type != "disabled")
        body["chat_template_kwargs"] = kwargs
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from exc


def chat_messages(req: MessagesRequest | CountTokensRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    system = _system_text(req.system)
    if system:
        messages.append({"role": "system", "content": system})
    for m, message in enumerate(req.messages):
        messages.extend(_turn(message, f"messages.{m}"))
    return messages


def _system_text(system: str | list[TextBlockParam] | None) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    return "\n\n".join(block.text for block in system)


def _turn(message: MessageParam, where: str) -> list[dict[str, Any]]:
    """One Anthropic turn -> OpenAI messages: tool results become `tool` messages
    (before the rest of the user's turn, as Anthropic orders them)."""
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    texts: list[str] = []
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for b, block in enumerate(message.content):
        param = f"{where}.content.{b}"
        if block.type in ("thinking", "redacted_thinking"):
            continue  # past reasoning: chat templates leave it out
        if block.type == "text":
            texts.append(block.text)
            parts.append({"type": "text", "text": block.text})
        elif block.type == "image" and message.role == "user":
            parts.append(_image(block))
        elif block.type == "tool_use" and message.role == "assistant":
            arguments = json.dumps(block.input, ensure_ascii=False)
            function = {"name": block.name, "arguments": arguments}
            calls.append({"id": block.id, "type": "function", "function": function})
        elif block.type == "tool_result" and message.role == "user":
            content, images = _tool_result(block)
            results.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": content})
            parts.extend(images)  # engines take images from users only
        else:
            raise InvalidRequestError(
                f"A `{block.type}` block cannot be in a `{message.role}` message.", param=param
            )
    if message.role == "assistant":
        # The model's own text blocks are pieces of one answer: joined as they were.
        turn: dict[str, Any] = {"role": "assistant"}
        if texts or not calls:
            turn["content"] = "".join(texts)
        if calls:
            turn["tool_calls"] = calls
        return [turn]
    if message.role == "system":
        return [{"role": "system", "content": "\n\n".join(texts)}]
    if results and not parts:
        return results
    if len(parts) == len(texts):
        return [*results, {"role": "user", "content": "\n".join(texts)}]
    return [*results, {"role": "user", "content": parts}]


def _image(block: ImageBlockParam) -> dict[str, Any]:
    source = block.source
    if source.type == "base64":
        url = f"data:{source.media_type};base64,{source.data}"
    else:
        url = source.url
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result(block: ToolResultBlockParam) -> tuple[str, list[dict[str, Any]]]:
    """(the result's text, its images). An error result says so in the text: chat
    models have no other place for it."""
    if block.content is None or isinstance(block.content, str):
        text, images = block.content or "", []
    else:
        text = "\n".join(part.text for part in block.content if part.type == "text")
        images = [_image(part) for part in block.content if part.type == "image"]
    if block.is_error:
        text = f"Error: {text}" if text else "Error"
    return text, images


def _tools(req: MessagesRequest) -> dict[str, Any]:
    """`tools`, `tool_choice` and `parallel_tool_calls` for the chat request."""
    choice = req.tool_choice
    if not req.tools:
        if choice is not None and choice.type in ("any", "tool"):
            raise InvalidRequestError(
                f'tool_choice "{choice.type}" needs `tools`.', param="tool_choice"
            )
        return {}
    tools = []
    for t, tool in enumerate(req.tools):
        if tool.type not in (None, "custom"):
            raise InvalidRequestError(
                f"The server tool `{tool.type}` is not available on this gateway; client "
                "tools (with `input_schema`) are.",
                param=f"tools.{t}.type",
            )
        if tool.input_schema is None:
            raise InvalidRequestError("A tool needs `input_schema`.", param=f"tools.{t}")
        function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
        if tool.description is not None:
            function["description"] = tool.description
        tools.append({"type": "function", "function": function})
    out: dict[str, Any] = {"tools": tools}
    if choice is not None:
        if choice.type == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        else:
            out["tool_choice"] = _TOOL_CHOICES[choice.type]
        if choice.disable_parallel_tool_use:
            out["parallel_tool_calls"] = False
    return out


def estimate_input_tokens(req: MessagesRequest | CountTokensRequest) -> int:
    """count_tokens' answer: an estimate (about four characters per token) over the
    system prompt, the messages' text, tool calls and results, and the tool
    definitions. Images are not counted. No engine offers a tokenizer through
    SageMaker for every container."""
    texts = [_system_text(req.system)]
    for message in req.messages:
        if isinstance(message.content, str):
            texts.append(message.content)
            continue
        for block in message.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                texts.append(block.name + json.dumps(block.input, ensure_ascii=False))
            elif block.type == "tool_result":
                texts.append(_tool_result(block)[0])
            elif block.type == "thinking":
                texts.append(block.thinking)
    for tool in req.tools or ():
        texts.append(json.dumps(tool.model_dump(exclude_none=True), ensure_ascii=False))
    return estimate_tokens("\n".join(t for t in texts if t))
