"""The normalised chunk contract (chunks.py): what ChunkNormalizer makes of engine
chunks whatever the engine got wrong, and what CompletionBuilder folds them into."""

from __future__ import annotations

from typing import Any

from emd_proxy.chunks import ChunkNormalizer, CompletionBuilder, arguments_text, normalise_answer

MODEL = "Qwen3-8B/dev"


def engine_chunk(delta: dict[str, Any], finish: str | None = None, **top: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **top}


def tool(arguments: Any = "", name: str | None = None, **call: Any) -> dict[str, Any]:
    """A delta with one engine tool-call fragment."""
    function = {"arguments": arguments} | ({"name": name} if name else {})
    return {"tool_calls": [{**call, "function": function}]}


def calls_of(chunk: dict[str, Any]) -> list[dict[str, Any]]:
    return chunk["choices"][0]["delta"].get("tool_calls", [])


def test_one_stable_id_and_created_and_the_public_model_id() -> None:
    normalise = ChunkNormalizer(MODEL)
    first = normalise(engine_chunk({"content": "a"}, id="cmpl-1", created=5, model="/opt/ml"))
    second = normalise(engine_chunk({"content": "b"}, id="other", created=9))
    for chunk in (first, second):
        assert (chunk["id"], chunk["created"], chunk["model"]) == ("cmpl-1", 5, MODEL)
        assert chunk["object"] == "chat.completion.chunk"


def test_missing_id_and_created_are_made_up_once() -> None:
    normalise = ChunkNormalizer(MODEL)
    a, b = normalise(engine_chunk({})), normalise(engine_chunk({}))
    assert a["id"].startswith("chatcmpl-")
    assert a["id"] == b["id"]
    assert a["created"] == b["created"] > 0


def test_tool_call_indexes_count_from_zero_without_gaps() -> None:
    """-1, missing and engine-specific indexes all become 0, 1, ... per choice."""
    normalise = ChunkNormalizer(MODEL)
    deltas = [
        tool("{", "f", index=7, id="call_aaaaaa"),
        tool("}", index=7),
        tool({}, "g", index=-1),
        tool("x"),
    ]
    out = [normalise(engine_chunk(delta)) for delta in deltas]
    assert [call["index"] for chunk in out for call in calls_of(chunk)] == [0, 0, 1, 1]


def test_id_and_type_only_on_a_calls_first_fragment_with_string_arguments() -> None:
    normalise = ChunkNormalizer(MODEL)
    first = normalise(engine_chunk(tool({"a": 1}, "f", index=0, id="0")))
    later = normalise(engine_chunk(tool("", index=0, id="0", type="function")))
    (call,) = calls_of(first)
    assert call["id"].startswith("call_")  # "0" is not unique across a conversation
    assert call["type"] == "function"
    assert call["function"] == {"name": "f", "arguments": '{"a":1}'}
    assert calls_of(later) == [{"index": 0, "function": {"arguments": ""}}]


def test_an_empty_tool_calls_list_is_dropped() -> None:
    chunk = ChunkNormalizer(MODEL)(engine_chunk({"content": "a", "tool_calls": []}))
    assert "tool_calls" not in chunk["choices"][0]["delta"]


def test_tgi_finish_reasons_become_openais_and_the_rest_pass_as_the_engine_said() -> None:
    normalise = ChunkNormalizer(MODEL)
    reasons = ["eos_token", "stop_sequence", "length", "abort", "tool_calls"]
    out = [normalise(engine_chunk({}, r))["choices"][0]["finish_reason"] for r in reasons]
    assert out == ["stop", "stop", "length", "abort", "tool_calls"]


def test_a_named_tool_call_keeps_the_engines_stop() -> None:
    """vLLM (like OpenAI) finishes a forced call of a named tool with `stop`."""
    normalise = ChunkNormalizer(MODEL)
    normalise(engine_chunk(tool("{}", "f", index=0)))
    assert normalise(engine_chunk({}, "stop"))["choices"][0]["finish_reason"] == "stop"


def test_the_system_fingerprint_is_on_every_chunk() -> None:
    normalise = ChunkNormalizer(MODEL)
    first = normalise(engine_chunk({"content": "a"}, system_fingerprint="fp_1"))
    later = normalise(engine_chunk({"content": "b"}, "stop"))
    assert first["system_fingerprint"] == later["system_fingerprint"] == "fp_1"
    normalise.usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    assert normalise.usage_chunk()["system_fingerprint"] == "fp_1"


def test_continuous_usage_stays_on_every_chunk_when_asked() -> None:
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    kept = ChunkNormalizer(MODEL, continuous_usage=True)(
        engine_chunk({"content": "a"}, usage=usage)
    )
    assert kept["usage"] == usage
    taken = ChunkNormalizer(MODEL)(engine_chunk({"content": "a"}, usage=usage))
    assert "usage" not in taken


def test_a_non_stream_answer_is_normalised_and_keeps_the_engines_fields() -> None:
    answer = normalise_answer(
        {
            "id": "",
            "object": "chat.completion",
            "model": "served",
            "system_fingerprint": "",
            "prompt_logprobs": [None, {"1": {"logprob": -1.0}}],
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "reasoning": "hmm",
                        "tool_calls": [
                            {"id": "0", "function": {"name": "f", "arguments": {"a": 1}}}
                        ],
                    },
                    "finish_reason": "stop",
                    "stop_reason": None,
                    "token_ids": [5, 6],
                }
            ],
        },
        MODEL,
    )
    assert answer["id"].startswith("chatcmpl-") and answer["model"] == MODEL
    assert "system_fingerprint" not in answer  # an empty one says nothing
    assert answer["prompt_logprobs"] == [None, {"1": {"logprob": -1.0}}]
    (choice,) = answer["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["token_ids"] == [5, 6] and choice["logprobs"] is None
    message = choice["message"]
    assert message["content"] is None and message["refusal"] is None
    assert message["annotations"] == []
    assert message["reasoning_content"] == message["reasoning"] == "hmm"
    (call,) = message["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"] == {"name": "f", "arguments": '{"a":1}'}


def test_reasoning_is_sent_under_both_names() -> None:
    delta = ChunkNormalizer(MODEL)(engine_chunk({"reasoning": "hmm"}))["choices"][0]["delta"]
    assert delta["reasoning"] == delta["reasoning_content"] == "hmm"


def test_usage_is_taken_out_and_sent_alone_last() -> None:
    normalise = ChunkNormalizer(MODEL)
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    chunk = normalise(engine_chunk({"content": "a"}, "stop", id="c", usage=usage))
    assert "usage" not in chunk
    assert normalise.usage == usage
    last = normalise.usage_chunk()
    assert last["choices"] == []
    assert (last["id"], last["model"], last["usage"]) == ("c", MODEL, usage)


def test_a_chunk_without_choices_gets_an_empty_list() -> None:
    assert ChunkNormalizer(MODEL)({"choices": None})["choices"] == []


def test_arguments_text() -> None:
    assert arguments_text(None) == ""
    assert arguments_text('{"a"') == '{"a"'
    assert arguments_text({"city": "Köln"}) == '{"city":"Köln"}'


# --- CompletionBuilder ------------------------------------------------------------------


def test_fold_joins_text_reasoning_tool_calls_and_logprobs() -> None:
    normalise = ChunkNormalizer(MODEL)
    builder = CompletionBuilder()
    token = {"token": "a", "logprob": -0.1, "top_logprobs": []}
    usage = {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5}
    with_logprobs = engine_chunk({"content": "He"})
    with_logprobs["choices"][0]["logprobs"] = {"content": [token]}
    for raw in [
        engine_chunk(
            {"role": "assistant", "reasoning": "think"}, id="c", created=3, system_fingerprint="fp"
        ),
        with_logprobs,
        engine_chunk({"content": "llo"}),
        engine_chunk(tool('{"a"', "f", index=0)),
        engine_chunk(tool(": 1}", index=0), "tool_calls", usage=usage),
    ]:
        builder.add(normalise(raw))
    builder.add(normalise.usage_chunk())
    result = builder.result(MODEL)
    assert (result["id"], result["created"], result["object"]) == ("c", 3, "chat.completion")
    assert result["system_fingerprint"] == "fp"
    assert result["usage"]["total_tokens"] == 5
    (choice,) = result["choices"]
    message = choice["message"]
    assert message["content"] == "Hello"
    assert message["reasoning_content"] == "think"
    (call,) = message["tool_calls"]
    assert call["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert call["id"].startswith("call_")
    assert choice["finish_reason"] == "tool_calls"
    assert choice["logprobs"] == {"content": [token]}


def test_fold_of_only_a_tool_call_has_null_content() -> None:
    normalise = ChunkNormalizer(MODEL)
    builder = CompletionBuilder()
    builder.add(normalise(engine_chunk(tool("{}", "f"), "stop")))
    message = builder.result(MODEL)["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"][0]["function"]["name"] == "f"


def test_fold_of_nothing_is_one_empty_stopped_choice() -> None:
    result = CompletionBuilder().result(MODEL)
    assert result["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "", "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert "usage" not in result


def test_fold_keeps_choices_apart() -> None:
    normalise = ChunkNormalizer(MODEL)
    builder = CompletionBuilder()
    for index, text in [(1, "b"), (0, "a"), (1, "c")]:
        builder.add(normalise({"choices": [{"index": index, "delta": {"content": text}}]}))
    choices = builder.result(MODEL)["choices"]
    assert [(c["index"], c["message"]["content"]) for c in choices] == [(0, "a"), (1, "bc")]
