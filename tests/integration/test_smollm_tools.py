"""Tool calls on the real local model, SmolLM2-135M-Instruct on llama.cpp: the template
that gives it tools, the request llama.cpp gets for each `tool_choice`, the vLLM
framing of llama.cpp's deltas, and calls through the gateway with the openai SDK.

A 135M model's judgement is poor, so the tests assert structure only (a parsable call
to a tool that exists, with the schema's required keys; text after a round trip),
never what it says."""

from __future__ import annotations

import json
from typing import Any

import jinja2
import openai
import pytest

from emd.local.containers.llamacpp import (
    CALL_END,
    CALL_START,
    SMOLLM2_TOOLS_TEMPLATE,
    VllmToolFraming,
    smollm2_path,
    tool_mode,
    with_tool_choice,
)
from emd.local.containers.vllm_request import ChatCompletionRequest

from .conftest import SMOL

# The template inside SmolLM2-135M-Instruct's GGUF (tokenizer.chat_template).
ORIGINAL = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
    "Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the current time in a timezone",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string"}},
            "required": ["timezone"],
        },
    },
}
TOOLS: list[Any] = [WEATHER, TIME]
REQUIRED = {"get_weather": {"city"}, "get_time": {"timezone"}}
ASK = [{"role": "user", "content": "What is the weather in Paris right now?"}]
SEED = 7


def render(template: str, messages: list[dict[str, Any]], tools: Any = None) -> str:
    env = jinja2.Environment()  # undefined fields are falsy, as in llama.cpp
    return env.from_string(template).render(
        messages=messages, tools=tools, add_generation_prompt=True
    )


# --- the template (no model) ----------------------------------------------------------


def test_original_template_is_the_one_in_the_gguf() -> None:
    with smollm2_path().open("rb") as f:
        head = f.read(4 * 1024 * 1024)
    assert ORIGINAL.encode() in head


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "Hi"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "How are you?"},
        ],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": "Now be long."},
            {"role": "user", "content": "Again"},
        ],
        [],
    ],
)
def test_without_tools_the_prompt_is_smollm2s_own(messages: list[dict[str, Any]]) -> None:
    assert render(SMOLLM2_TOOLS_TEMPLATE, messages) == render(ORIGINAL, messages)


def test_tools_and_a_round_trip_render_in_hermes_form() -> None:
    messages = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 18}'},
    ]
    prompt = render(SMOLLM2_TOOLS_TEMPLATE, messages, TOOLS)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert "<tools>\n" in prompt and '"name": "get_time"' in prompt
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in (
        prompt
    )
    assert '<|im_start|>user\n<tool_response>\n{"temp_c": 18}\n</tool_response><|im_end|>' in (
        prompt
    )
    assert prompt.endswith("<|im_start|>assistant\n")


# --- the llama.cpp request per tool_choice (no model) --------------------------------


def engine_body(**fields: Any) -> tuple[str, dict[str, Any]]:
    body = {"messages": ASK, **fields}
    request = ChatCompletionRequest.model_validate(dict(body))
    mode = tool_mode(request)
    return mode, with_tool_choice(body, mode, request)


def test_auto_is_left_to_the_model_with_one_call_at_most() -> None:
    mode, body = engine_body(tools=TOOLS)
    assert mode == "auto"
    assert body["messages"] == ASK and body["tools"] == TOOLS
    assert body["parallel_tool_calls"] is False and body["stop"] == [CALL_END]


def test_required_prefills_the_call() -> None:
    mode, body = engine_body(tools=TOOLS, tool_choice="required", stop="END")
    assert mode == "required"
    assert body["messages"][-1] == {"role": "assistant", "content": CALL_START}
    assert body["tool_choice"] == "required" and body["tools"] == TOOLS
    assert body["stop"] == ["END", CALL_END]


def test_a_named_function_is_the_only_tool_offered() -> None:
    named = {"type": "function", "function": {"name": "get_time"}}
    mode, body = engine_body(tools=TOOLS, tool_choice=named, parallel_tool_calls=True)
    assert mode == "named"
    assert body["tools"] == [TIME] and body["tool_choice"] == "required"
    assert body["messages"][-1]["content"] == CALL_START
    assert body["parallel_tool_calls"] is False


def test_parallel_calls_only_when_asked_and_none_means_none() -> None:
    _, body = engine_body(tools=TOOLS, tool_choice="required", parallel_tool_calls=True)
    assert body["parallel_tool_calls"] is True and "stop" not in body
    mode, body = engine_body(tools=TOOLS, tool_choice="none")
    assert mode == "none" and body == {"messages": ASK, "tools": TOOLS, "tool_choice": "none"}
    assert engine_body()[0] == "none"


# --- vLLM framing of llama.cpp's deltas (no model) -----------------------------------


def llama_chunks() -> list[dict[str, Any]]:
    """What llama.cpp streams for one call (ids and fields as it sends them)."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"finish_reason": finish, "index": 0, "delta": delta}
        return {"choices": [choice], "id": "chatcmpl-x", "object": "chat.completion.chunk"}

    first = {
        "index": 0,
        "id": "FV2imhkoGeHbgXu7H7u1UjrSn2boNDcj",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{"},
    }
    fragments = ['"city"', ': "Paris"', "}"]
    return [
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [first]}),
        *(chunk({"tool_calls": [{"index": 0, "function": {"arguments": f}}]}) for f in fragments),
        chunk({}, "tool_calls"),
        {"choices": [], "id": "chatcmpl-x", "usage": {"completion_tokens": 9}},
    ]


def framed(mode: str) -> list[dict[str, Any]]:
    framing = VllmToolFraming(mode)
    return [out for chunk in llama_chunks() for out in framing(chunk)]


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


def test_required_is_framed_like_vllm() -> None:
    chunks = framed("required")
    d = deltas(chunks)
    call = d[1]["tool_calls"][0]
    assert call["id"].startswith("chatcmpl-tool-") and call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": "{"}
    assert d[2] == {"tool_calls": [{"index": 0, "function": {"name": None, "arguments": '"city"'}}]}
    assert d[-1] == {} and chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"] == {"completion_tokens": 9}


def test_named_ends_with_an_empty_fragment_and_stop() -> None:
    chunks = framed("named")
    d = deltas(chunks)
    assert d[2] == {"tool_calls": [{"index": 0, "function": {"arguments": '"city"'}}]}
    assert d[-1] == {"tool_calls": [{"index": 0, "function": {"arguments": ""}}]}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_auto_is_framed_like_the_hermes_parser() -> None:
    d = deltas(framed("auto"))
    name = d[1]["tool_calls"][0]
    assert d[1]["content"] is None and name["function"] == {"name": "get_weather"}
    assert d[2] == {"content": None, "tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}
    arguments = "".join(
        (x.get("tool_calls") or [{}])[0].get("function", {}).get("arguments") or "" for x in d
    )
    assert json.loads(arguments) == {"city": "Paris"}


def test_text_passes_unchanged() -> None:
    text = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    assert VllmToolFraming("auto")(text) == [text]


# --- through the gateway, the real model ---------------------------------------------


def check_call(name: str, arguments: str) -> None:
    assert name in REQUIRED
    parsed = json.loads(arguments)
    assert isinstance(parsed, dict)
    assert REQUIRED[name] <= parsed.keys()


@pytest.mark.slow
def test_required_gives_a_parsable_call(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model=SMOL, messages=ASK, tools=TOOLS, tool_choice="required", seed=SEED
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].type == "function" and calls[0].id
    check_call(calls[0].function.name, calls[0].function.arguments)
    assert answer.usage is not None and answer.usage.completion_tokens > 0


@pytest.mark.slow
@pytest.mark.parametrize("tool", [WEATHER, TIME])
def test_a_named_function_streams_a_call_to_it(client: openai.OpenAI, tool: Any) -> None:
    name = tool["function"]["name"]
    stream = client.chat.completions.create(
        model=SMOL,
        messages=ASK,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": name}},
        stream=True,
        stream_options={"include_usage": True},
        seed=SEED,
    )
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    body = chunks[:-1]
    assert all(c.choices for c in body)
    calls: dict[int, dict[str, str]] = {}
    for chunk in body:
        for call in chunk.choices[0].delta.tool_calls or []:
            if call.id is not None:
                assert call.index not in calls and call.type == "function"
                calls[call.index] = {"name": call.function.name or "", "arguments": ""}
            calls[call.index]["arguments"] += call.function.arguments or ""
    assert list(calls) == [0]
    assert calls[0]["name"] == name
    check_call(name, calls[0]["arguments"])
    # A call of a named tool finishes `stop`, as vLLM (and OpenAI) say it.
    assert body[-1].choices[0].finish_reason == "stop"


@pytest.mark.slow
def test_a_round_trip_returns_text(client: openai.OpenAI) -> None:
    call = client.chat.completions.create(
        model=SMOL, messages=ASK, tools=TOOLS, tool_choice="required", seed=SEED
    )
    message = call.choices[0].message
    assert message.tool_calls
    result = {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": '{"temp_c": 18}'}
    messages: list[Any] = [*ASK, message.model_dump(exclude_none=True), result]
    answer = client.chat.completions.create(
        model=SMOL, messages=messages, tools=TOOLS, tool_choice="none", max_tokens=40, seed=SEED
    )
    choice = answer.choices[0]
    assert choice.message.tool_calls is None
    assert choice.message.content and choice.message.content.strip()
    assert choice.finish_reason in {"stop", "length"}
    # The agent-loop default (auto) after a result: accepted; text or a well-formed call.
    stream = client.chat.completions.create(
        model=SMOL, messages=messages, tools=TOOLS, max_tokens=40, seed=SEED, stream=True
    )
    chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason in {"stop", "length", "tool_calls"}


@pytest.mark.slow
def test_auto_answers_in_text_or_a_well_formed_call(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model=SMOL, messages=ASK, tools=TOOLS, max_tokens=40, seed=SEED
    )
    message = answer.choices[0].message
    for call in message.tool_calls or []:
        check_call(call.function.name, call.function.arguments)
    assert message.tool_calls or message.content is not None


def test_vllms_tool_checks_still_apply(client: openai.OpenAI) -> None:
    unknown = {"type": "function", "function": {"name": "not_a_tool"}}
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=SMOL, messages=ASK, tools=TOOLS, tool_choice=unknown)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=SMOL, messages=ASK, tool_choice="required")
