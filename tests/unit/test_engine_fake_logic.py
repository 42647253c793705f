"""The engine-specific logic of the fakes, without a server: vLLM's plans, TGI's stop
criteria and stream state machines, LMI's Gson error body, WhisperX's renderings."""

from __future__ import annotations

import json

import pytest

from emd.local.containers import vllm_output
from emd.local.containers.echo_model import tokens
from emd.local.containers.lmi import gson_error
from emd.local.containers.tgi import TgiContainer
from emd.local.containers.tgi_stream import TgiStream
from emd.local.containers.vllm_request import ChatCompletionRequest, plan
from emd.local.containers.whisperx import to_srt, to_vtt, transcript_text
from emd_proxy.engines.tgi import JSON_OBJECT_REGEX

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
HI = [{"role": "user", "content": "The weather in Paris"}]


def vllm_plan(reasoning: bool = False, **body: object):
    return plan(
        ChatCompletionRequest.model_validate({"messages": HI, **body}), reasoning_parser=reasoning
    )


@pytest.mark.parametrize(
    ("choice", "mode", "finish"),
    [
        ("auto", "auto", "tool_calls"),
        ("required", "required", "tool_calls"),
        # vLLM: "stop" for a named tool choice, as OpenAI does.
        ({"type": "function", "function": {"name": "get_weather"}}, "named", "stop"),
    ],
)
def test_vllm_tool_modes(choice: object, mode: str, finish: str) -> None:
    answer = vllm_plan(tools=[TOOL], tool_choice=choice)
    assert (answer.mode, answer.finish) == (mode, finish)
    assert json.loads(answer.arguments(answer.calls[0])) == {"city": "The weather in Paris"}
    message = vllm_output.completion(answer, "echo")["choices"][0]["message"]
    assert message["content"] == (None if mode == "auto" else "")


def test_vllm_tools_default_to_auto_and_none_answers_in_prose() -> None:
    assert vllm_plan(tools=[TOOL]).mode == "auto"
    prose = vllm_plan(tools=[TOOL], tool_choice="none")
    assert (prose.mode, "".join(prose.words)) == ("none", "The weather in Paris")


@pytest.mark.parametrize(
    "body",
    [
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        {"tool_choice": "auto"},
        {"tools": []},
        {"top_logprobs": 2},
        {"stream_options": {"include_usage": True}},
        {"response_format": {"type": "json_schema"}},
        {"max_tokens": "many"},
    ],
)
def test_vllm_rejects_what_its_request_model_rejects(body: dict) -> None:
    with pytest.raises(ValueError, match="ChatCompletionRequest"):
        ChatCompletionRequest.model_validate({"messages": HI, **body})


def test_vllm_reasoning_counts_against_max_tokens() -> None:
    answer = vllm_plan(reasoning=True, max_tokens=5)
    assert answer.reasoning == tokens("Thinking about: The weather in Paris")[:5]
    assert answer.words == []
    assert answer.finish == "length"
    usage = vllm_output.completion(answer, "echo")["usage"]
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 5}


def test_vllm_stop_reason_is_the_stop_string() -> None:
    answer = vllm_plan(stop=[" in"])
    choice = vllm_output.completion(answer, "echo")["choices"][0]
    assert (choice["message"]["content"], choice["stop_reason"]) == ("The weather", " in")


@pytest.mark.parametrize(
    ("stop", "max_tokens", "text", "finish"),
    [
        ([" in"], None, "The weather in", "stop_sequence"),  # kept, at a token boundary
        (["eath"], None, "The weather in Paris", "stop"),  # inside a token: never matches
        ([" in"], 2, "The weather", "length"),  # the length check comes first
        ([], 4, "The weather in Paris", "length"),
    ],
)
def test_tgi_stopping_criteria(stop: list, max_tokens: int | None, text: str, finish: str) -> None:
    container = TgiContainer()
    body: dict = {"messages": HI, "stop": stop}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    answer = container.generate(body)
    assert not isinstance(answer, str)
    (choice,) = container.completion(answer)["choices"]
    assert (choice["message"]["content"], choice["finish_reason"]) == (text, finish)


def tgi_chunks(legacy: bool, **body: object) -> list[dict]:
    container = TgiContainer(tool_format="legacy" if legacy else "3.2")
    answer = container.generate({"messages": HI, **body})
    assert not isinstance(answer, str)
    return list(TgiStream(answer, "echo", container.fingerprint, legacy).chunks())


def test_tgi_32_tool_stream_replays_chat_state() -> None:
    chunks = tgi_chunks(False, tools=[TOOL], stream_options={"include_usage": True})
    *calls, usage = chunks
    first = calls[0]["choices"][0]["delta"]["tool_calls"][0]
    assert first == {
        "index": 0,
        "id": "0",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{"},
    }
    arguments = "".join(
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in calls
    )
    assert json.loads(arguments) == {"city": "The weather in Paris"}
    assert all(c["choices"][0]["finish_reason"] is None for c in calls)
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0


def test_tgi_legacy_tool_stream_sends_the_raw_grammar_json() -> None:
    chunks = tgi_chunks(True, tools=[TOOL], stream_options={"include_usage": True})
    calls = [c["choices"][0]["delta"]["tool_calls"] for c in chunks]
    assert all(
        isinstance(c, dict) and c["id"] == "" and c["function"]["name"] is None for c in calls
    )
    raw = "".join(c["function"]["arguments"] for c in calls)
    assert raw == '{"function": {"_name": "get_weather", "city": "The weather in Paris"}}</s>'
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] is not None  # inline: no separate usage chunk
    assert all(c["usage"] is None for c in chunks[:-1])


def test_tgi_tool_choice_must_name_a_tool() -> None:
    assert TgiContainer().generate({"messages": HI, "tools": [TOOL], "tool_choice": "x"}) == (
        "Tool with name x not found"
    )


SCHEMA = TOOL["function"]["parameters"]
OPENAI_SCHEMA = {"type": "json_schema", "json_schema": {"name": "W", "schema": SCHEMA}}


def tgi_reads(container: TgiContainer, **body: object) -> bool:
    """Whether the body deserializes as TGI's ChatRequest (or another request type)."""
    full = {"messages": HI, **body}
    return container.deserialize_error(json.dumps(full).encode(), full) is None


@pytest.mark.parametrize("era", ["3.2", "legacy"])
@pytest.mark.parametrize(
    "body",
    [
        {"response_format": OPENAI_SCHEMA},  # GrammarType has no `json_schema` key
        {"response_format": {"type": "json_object"}},  # a variant without its `value`
        {"response_format": {"type": "text"}},
        {"response_format": {"type": "regex", "value": 1}},
        {"stop": "END"},  # Option<Vec<String>>
        {"logit_bias": {"50256": -100}},  # Option<Vec<f32>>
        {"logit_bias": {}},
        {"stream": None},  # bool with a default, not an Option
    ],
)
def test_tgi_rejects_what_its_serde_cannot_read(era: str, body: dict) -> None:
    assert not tgi_reads(TgiContainer(tool_format=era), **body)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        {"response_format": {"type": "json", "value": SCHEMA, "ignored": 1}},
        {"response_format": {"type": "json_object", "value": json.dumps(SCHEMA)}},
        {"response_format": {"type": "regex", "value": "(yes|no)"}},
        {"stop": ["END"], "logit_bias": [0.5]},
    ],
)
def test_tgi_reads_its_own_shapes_in_every_era(body: dict) -> None:
    for era in ("3.2", "legacy"):
        assert tgi_reads(TgiContainer(tool_format=era), **body)  # type: ignore[arg-type]


def test_tgis_json_schema_grammar_exists_from_3_3_only() -> None:
    grammar = {"type": "json_schema", "value": {"name": "W", "schema": SCHEMA}}
    assert tgi_reads(TgiContainer(), response_format=grammar)  # 3.3.6
    assert not tgi_reads(TgiContainer(version="3.2.3"), response_format=grammar)
    assert not tgi_reads(TgiContainer(tool_format="legacy"), response_format=grammar)
    missing_schema = {"type": "json_schema", "value": {"name": "W"}}
    assert not tgi_reads(TgiContainer(), response_format=missing_schema)


@pytest.mark.parametrize(
    ("grammar", "error"),
    [
        ({"type": "json", "value": {"type": "object"}}, "Grammar must have a 'properties' field"),
        ({"type": "json", "value": 3}, "grammar is not supported"),
        ({"type": "json", "value": SCHEMA}, None),
        ({"type": "regex", "value": "(yes|no)"}, None),
    ],
)
def test_tgi_grammar_validation(grammar: dict, error: str | None) -> None:
    problem = TgiContainer().validation_error({"messages": HI, "response_format": grammar}, 4)
    assert problem is None if error is None else error in str(problem)


def tgi_text(**body: object) -> str:
    container = TgiContainer()
    answer = container.generate({"messages": HI, **body})
    assert not isinstance(answer, str)
    return container.completion(answer)["choices"][0]["message"]["content"]


def test_tgi_answers_under_its_grammar() -> None:
    assert json.loads(tgi_text(response_format={"type": "json", "value": SCHEMA})) == {
        "city": "The weather in Paris"
    }
    as_string = {"type": "json", "value": json.dumps(SCHEMA)}
    assert json.loads(tgi_text(response_format=as_string)) == {"city": "The weather in Paris"}
    named = {"type": "json_schema", "value": {"name": "W", "schema": SCHEMA}}
    assert json.loads(tgi_text(response_format=named)) == {"city": "The weather in Paris"}
    any_object = {"type": "regex", "value": JSON_OBJECT_REGEX}
    assert json.loads(tgi_text(response_format=any_object)) == {"echo": "The weather in Paris"}
    prose = {"type": "regex", "value": "The weather in [A-Z][a-z]+"}
    assert tgi_text(response_format=prose) == "The weather in Paris"


def test_tgi_grammar_and_tools_are_mutually_exclusive() -> None:
    body = {"messages": HI, "tools": [TOOL], "response_format": {"type": "json", "value": SCHEMA}}
    assert TgiContainer().generate(body) == "Grammar and tools are mutually exclusive"


def test_lmi_error_body_is_gson() -> None:
    body = gson_error("a <b> & c='d'", 424)
    assert body == b'{"error":"a \\u003cb\\u003e \\u0026 c\\u003d\\u0027d\\u0027","code":424}'
    assert json.loads(body) == {"error": "a <b> & c='d'", "code": 424}


def test_whisperx_renders_as_the_dlc_does() -> None:
    # The DLC's quirks the proxy must pass through untouched: milliseconds truncated
    # (1.001 s is 1.000 in float arithmetic), an empty segment still a cue, texts joined
    # with one space each (so two around an empty one).
    segments = [
        {"text": " Hello world.", "start": 0.0, "end": 1.001},
        {"text": "", "start": 1.001, "end": 1.5},
        {"text": " Bye. ", "start": 3661.5, "end": 3662.25},
    ]
    assert to_srt(segments) == (
        "1\n00:00:00,000 --> 00:00:01,000\nHello world.\n\n"
        "2\n00:00:01,000 --> 00:00:01,500\n\n\n"
        "3\n01:01:01,500 --> 01:01:02,250\nBye.\n"
    )
    assert to_vtt(segments) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHello world.\n\n"
        "00:00:01.000 --> 00:00:01.500\n\n\n"
        "01:01:01.500 --> 01:01:02.250\nBye.\n"
    )
    assert transcript_text(segments) == "Hello world.  Bye."
