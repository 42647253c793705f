"""The proxy's own TGI adapter: request preparation and the stream fixer (stop
sequences TGI leaves in the text, 3.2+ tool streams without a finish_reason or a
closing brace, and the pre-3.2 raw-token tool calls), fed TGI-shaped chunks directly."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import pytest

from emd.local.containers.tgi import TgiContainer
from emd_proxy.chunks import ChunkNormalizer
from emd_proxy.engines.tgi import JSON_OBJECT_REGEX, TgiEngine, TgiStreamFixer
from emd_proxy.errors import InvalidRequestError
from emd_proxy.registry import RegistryEntry
from emd_proxy.schemas.chat import ChatCompletionRequest
from emd_proxy.schemas.completions import CompletionRequest

ENTRY = RegistryEntry(
    id="Mistral-7B/dev",
    model="Mistral-7B",
    tag="dev",
    endpoint="emd-mistral-7b-dev",
    engine="tgi",
    families=["chat"],
    features={"tools": True},
)
engine = TgiEngine()


def request(**body: Any) -> ChatCompletionRequest:
    messages = body.pop("messages", [{"role": "user", "content": "hi"}])
    return ChatCompletionRequest.model_validate({"model": ENTRY.id, "messages": messages, **body})


def payload(**body: Any) -> dict[str, Any]:
    return json.loads(engine.build_payload(request(**body), ENTRY))


def text_chunk(text: str | None, finish: str | None = None) -> dict[str, Any]:
    delta = {"role": "assistant"} | ({} if text is None else {"content": text})
    return {
        "id": "",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "tgi",
        "system_fingerprint": "3.3.6-sha",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def tool_chunk(calls: Any, finish: str | None = None) -> dict[str, Any]:
    chunk = text_chunk(None, finish)
    chunk["choices"][0]["delta"] = {"role": "assistant", "tool_calls": calls}
    return chunk


def run(fixer: TgiStreamFixer, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [fixed for chunk in chunks for fixed in fixer.fix(chunk)]
    return out + fixer.end()


def content(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


def finish_reasons(chunks: list[dict[str, Any]]) -> list[str]:
    return [
        c["choices"][0]["finish_reason"]
        for c in chunks
        if c["choices"] and c["choices"][0].get("finish_reason")
    ]


# --- prepare -------------------------------------------------------------------------


def test_n_above_one_is_refused_not_silently_answered_once() -> None:
    with pytest.raises(InvalidRequestError) as info:
        payload(n=2)
    assert info.value.param == "n"
    assert payload(n=1)["n"] == 1


def test_developer_messages_become_system_messages() -> None:
    messages = [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert [m["role"] for m in payload(messages=messages)["messages"]] == ["system", "user"]


def test_max_completion_tokens_becomes_max_tokens() -> None:
    body = payload(max_completion_tokens=7)
    assert body["max_tokens"] == 7
    assert "max_completion_tokens" not in body
    assert payload(max_completion_tokens=7, max_tokens=3)["max_tokens"] == 3


# --- stop sequences --------------------------------------------------------------------


def test_a_stop_split_across_tokens_is_cut_and_never_sent() -> None:
    fixer = engine.fixer(request(stop=["END"]))
    out = run(fixer, [text_chunk("one E"), text_chunk("N"), text_chunk("D two", "stop_sequence")])
    assert content(out) == "one "
    assert all("E" not in c["choices"][0]["delta"].get("content", "") for c in out)
    assert finish_reasons(out) == ["stop_sequence"]
    # Which stop ended it, as vLLM says (`stop_reason`): the earliest in the text.
    assert [c["choices"][0].get("stop_reason") for c in out if c["choices"]][-1] == "END"


def test_the_earliest_stop_in_the_text_is_the_one_named() -> None:
    fixer = engine.fixer(request(stop=["two", "one"]))
    out = run(fixer, [text_chunk("zero one two", "stop_sequence")])
    assert content(out) == "zero "
    assert out[-1]["choices"][0]["stop_reason"] == "one"


def test_text_that_only_looked_like_a_stop_is_released() -> None:
    fixer = engine.fixer(request(stop="END"))
    first = fixer.fix(text_chunk("an E"))
    assert content(first) == "an"  # " E" may still begin "END"
    out = first + run(fixer, [text_chunk("nd", "length")])
    assert content(out) == "an End"
    assert "stop_reason" not in out[-1]["choices"][0]  # no stop matched


def test_held_back_text_is_flushed_when_the_stream_ends_without_a_finish() -> None:
    fixer = engine.fixer(request(stop=["STOP"]))
    out = run(fixer, [text_chunk("abc ST")])
    assert content(out) == "abc ST"
    assert finish_reasons(out) == ["stop"]


def test_without_stops_text_passes_unchanged() -> None:
    fixer = engine.fixer(request())
    chunks = [text_chunk("a"), text_chunk("b", "eos_token")]
    assert content(run(fixer, chunks)) == "ab"


# --- tool calls ------------------------------------------------------------------------


def test_tgi_3_2_tool_stream_gets_its_closing_brace_and_finish_reason() -> None:
    first = [{"index": 0, "id": "0", "type": "function",
              "function": {"name": "get_weather", "arguments": "{"}}]  # fmt: skip
    fragments = ['"city"', ': "Paris"']
    chunks = [tool_chunk(first)] + [
        tool_chunk([{"index": 0, "function": {"name": None, "arguments": f}}]) for f in fragments
    ]
    out = run(engine.fixer(request(tools=[{"type": "function"}])), chunks)
    arguments = "".join(
        call["function"]["arguments"]
        for c in out
        for call in c["choices"][0]["delta"].get("tool_calls", [])
    )
    assert json.loads(arguments) == {"city": "Paris"}
    assert finish_reasons(out) == ["tool_calls"]


def test_a_complete_3_2_tool_call_gets_no_extra_brace() -> None:
    call = [{"index": 0, "id": "0", "function": {"name": "f", "arguments": '{"a": 1}'}}]
    out = run(engine.fixer(request()), [tool_chunk(call)])
    assert [c["choices"][0]["delta"].get("tool_calls") for c in out[1:]] == [None]


def test_legacy_raw_token_tool_call_is_rebuilt_as_one_call() -> None:
    tokens = ['{"function": ', '{"_name": "get_weather", ', '"city": "Paris"}}', "</s>"]
    chunks = [
        tool_chunk(
            {
                "index": 0,
                "id": "",
                "type": "function",
                "function": {"name": None, "arguments": token},
            },
            "eos_token" if i == len(tokens) - 1 else None,
        )
        for i, token in enumerate(tokens)
    ]
    out = run(engine.fixer(request()), chunks)
    calls = [call for c in out for call in c["choices"][0]["delta"].get("tool_calls", [])]
    assert len(calls) == 1
    assert calls[0]["function"]["name"] == "get_weather"
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}


def test_legacy_tool_call_that_never_parses_keeps_its_text_as_arguments() -> None:
    chunks = [tool_chunk({"function": {"name": None, "arguments": '{"function": {"_na'}}, "length")]
    out = run(engine.fixer(request()), chunks)
    (call,) = [call for c in out for call in c["choices"][0]["delta"].get("tool_calls", [])]
    assert call["function"] == {"name": "", "arguments": '{"function": {"_na'}


def test_fixed_tool_stream_normalises_to_openai_chunks() -> None:
    """TGI's id "0" is not unique across a conversation: the normaliser gives the call
    a real id, on its first fragment only."""
    first = [{"index": 0, "id": "0", "function": {"name": "f", "arguments": "{"}}]
    more = [{"index": 0, "function": {"name": None, "arguments": '"a": 1'}}]
    normalise = ChunkNormalizer(ENTRY.id)
    out = [
        normalise(c) for c in run(engine.fixer(request()), [tool_chunk(first), tool_chunk(more)])
    ]
    calls = [call for c in out for call in c["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["id"].startswith("call_")
    assert calls[0]["type"] == "function"
    assert all("id" not in call for call in calls[1:])
    assert {call["index"] for call in calls} == {0}
    assert out[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_the_end_of_sequence_text_on_the_last_chunk_is_dropped() -> None:
    out = run(engine.fixer(request()), [text_chunk(" hi"), text_chunk("</s>", "eos_token")])
    assert content(out) == " hi"
    assert finish_reasons(out) == ["eos_token"]


def test_top_p_of_one_is_left_out_for_tgi() -> None:
    assert "top_p" not in payload(top_p=1.0)
    assert payload(top_p=0.9)["top_p"] == 0.9


# --- fields TGI's serde cannot read (router/src/lib.rs) --------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "W", "schema": SCHEMA, "strict": True},
}


def completion_payload(**body: Any) -> dict[str, Any]:
    completion = CompletionRequest.model_validate({"model": ENTRY.id, "prompt": "hi", **body})
    return json.loads(engine.completion_call(completion, ENTRY).body)


def test_json_schema_becomes_tgis_json_grammar() -> None:
    assert payload(response_format=JSON_SCHEMA)["response_format"] == {
        "type": "json",
        "value": SCHEMA,
    }


def test_json_object_becomes_the_regex_outlines_builds_for_any_object() -> None:
    grammar = payload(response_format={"type": "json_object"})["response_format"]
    assert grammar == {"type": "regex", "value": JSON_OBJECT_REGEX}
    accepted = ['{"echo": "hi"}', "{}", '{"a":[1,2.5,{"b":null}],"c":{"d":[true,"x"]}}']
    for text in accepted:
        assert re.fullmatch(JSON_OBJECT_REGEX, text), text
    for text in ["[1]", '"hi"', '{"a": 1,}', '{"a":{"b":{"c":{}}}}']:  # the last: depth 3
        assert not re.fullmatch(JSON_OBJECT_REGEX, text), text


def test_text_response_format_is_left_out() -> None:
    assert "response_format" not in payload(response_format={"type": "text"})


@pytest.mark.parametrize(
    ("response_format", "param"),
    [
        (
            {"type": "json_schema", "json_schema": {"name": "W"}},
            "response_format.json_schema.schema",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "L", "schema": {"type": "array"}}},
            "response_format.json_schema.schema",
        ),
        ({"type": "grammar", "grammar": "root ::= x"}, "response_format.type"),
    ],
)
def test_response_formats_tgi_cannot_take_are_refused(
    response_format: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        payload(response_format=response_format)
    assert info.value.param == param


def test_response_format_with_tools_is_refused_as_tgi_does() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": SCHEMA}}
    with pytest.raises(InvalidRequestError) as info:
        payload(response_format=JSON_SCHEMA, tools=[tool])
    assert info.value.param == "response_format"


def test_tgis_own_grammar_passes_unchanged() -> None:
    grammar = {"type": "regex", "value": "(yes|no)"}
    assert payload(response_format=grammar)["response_format"] == grammar


def test_a_string_stop_becomes_a_list() -> None:
    assert payload(stop="END")["stop"] == ["END"]
    assert payload(stop=["a", "b"])["stop"] == ["a", "b"]
    assert completion_payload(stop="END")["stop"] == ["END"]


def test_logit_bias_is_refused_unless_empty() -> None:
    for build in (payload, completion_payload):
        with pytest.raises(InvalidRequestError) as info:
            build(logit_bias={"50256": -100})
        assert info.value.param == "logit_bias"
        assert "logit_bias" not in build(logit_bias={})


def test_completions_take_no_response_format() -> None:
    with pytest.raises(InvalidRequestError) as info:
        completion_payload(response_format={"type": "json_object"})
    assert info.value.param == "response_format"


@pytest.mark.parametrize("era", ["3.2", "legacy"])
@pytest.mark.parametrize(
    "extra",
    [
        {"response_format": JSON_SCHEMA},
        {"response_format": {"type": "json_object"}},
        {"stop": "END"},
        {"logit_bias": {}},
    ],
)
def test_what_the_adapter_sends_deserializes_on_the_tgi_fakes(
    era: Literal["3.2", "legacy"], extra: dict[str, Any]
) -> None:
    """The OpenAI body does not deserialize as TGI's ChatRequest; the translated does."""
    container = TgiContainer(tool_format=era)
    openai_body = {"messages": [{"role": "user", "content": "hi"}], **extra}
    assert container.deserialize_error(json.dumps(openai_body).encode(), openai_body) is not None
    sent = payload(**extra)
    assert container.deserialize_error(json.dumps(sent).encode(), sent) is None
    assert container.validation_error(sent, 1) is None


# --- non-stream answers ------------------------------------------------------------------


def test_a_plain_answer_has_its_stop_cut_and_named() -> None:
    answer = {"choices": [{"message": {"content": "one END two"}, "finish_reason": "stop"}]}
    fixed = engine.fix_answer(answer, request(stop="END"))
    (choice,) = fixed["choices"]
    assert choice["message"]["content"] == "one "
    assert choice["stop_reason"] == "END"


def test_a_plain_tool_call_finishes_tool_calls() -> None:
    call = {"id": "0", "type": "function", "function": {"name": "f", "arguments": {}}}
    answer = {"choices": [{"message": {"tool_calls": [call]}, "finish_reason": "stop"}]}
    assert engine.fix_answer(answer, request())["choices"][0]["finish_reason"] == "tool_calls"


def test_a_streamed_tool_call_finishing_stop_finishes_tool_calls() -> None:
    fixer = engine.fixer(request())
    calls = [{"index": 0, "id": "0", "function": {"name": "f", "arguments": "{}"}}]
    out = run(fixer, [tool_chunk(calls), tool_chunk([], "stop")])
    assert finish_reasons(out) == ["tool_calls"]
