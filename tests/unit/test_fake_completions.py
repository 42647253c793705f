"""Legacy completions (`prompt`) in the fake engines, without a server: the echo of a
prompt, vLLM's CompletionRequest and serving checks and its framing, TGI's
CompletionRequest and framing, LMI's error bodies."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from emd.local.containers import echo_model as model
from emd.local.containers import lmi, tgi_completion, vllm_completion, vllm_completion_output
from emd.local.containers.tgi import TgiContainer
from emd.local.containers.vllm_completion import (
    CompletionRequest,
    ReturnedError,
    VllmCompletionPlan,
)
from emd.local.containers.vllm_request import VllmValidationError

PROMPT = "Say it again\nThe weather in Paris"
ECHO = " The weather in Paris"


def vllm(**body: Any) -> VllmCompletionPlan:
    return vllm_completion.plan(CompletionRequest.model_validate(body), "echo")


# --- the echo of a prompt ----------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "echo"),
    [
        (PROMPT, ECHO),
        ("The weather in Paris\n", "The weather in Paris"),  # no space after whitespace
        ("First line\n\n  Last line  \n\n", "Last line"),
        ("one", " one"),
        ("  \n ", ""),
    ],
)
def test_prompt_echo_is_the_last_non_blank_line(prompt: str, echo: str) -> None:
    assert model.prompt_echo(prompt) == echo


def test_token_ids_decode_to_number_words_and_back() -> None:
    text = model.decode([9906, 1917])
    assert text == "9906 1917"
    assert [model.token_id(t) for t in model.tokens(text)] == [9906, 1917]
    assert model.alternative_id(2) == model.VOCAB_SIZE - 1


# --- vLLM: CompletionRequest ---------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": ""},
        {"prompt": None},
        {},
        {"prompt": [1, "a"]},
        {"prompt": [-1]},
        {"prompt": [[1], "a"]},
        {"prompt": "x", "stream_options": {"include_usage": True}},
        {"prompt": "x", "logprobs": -2},
        {"prompt": "x", "logprobs": "many"},
        {"prompt": "x", "prompt_logprobs": 1, "stream": True},
        {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]},
        {"prompt": "x", "n": None},
        {"prompt": "x", "echo": "sometimes"},
        {"prompt": "x", "response_format": {"type": "json_schema"}},
        {"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {}}},
        {"prompt": "x", "response_format": {"type": "yaml"}},
        {"prompt": "x", "cache_salt": "a/b"},
        {"prompt": ["x"] * (vllm_completion.MAX_COMPLETION_PROMPTS + 1)},
    ],
)
def test_vllm_request_model_rejects_what_vllm_rejects(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="CompletionRequest"):
        CompletionRequest.model_validate(body)


@pytest.mark.parametrize(
    "prompt", ["x", ["x", "y"], [1, 2], [[1], [2, 3]], [], "   ", [""], [[]], "\n"]
)
def test_vllm_request_model_accepts_every_prompt_shape(prompt: object) -> None:
    request = CompletionRequest.model_validate({"prompt": prompt, "max_tokens": None})
    assert request.max_tokens == 16  # normalize_null_max_tokens


def test_vllm_first_failing_validator_is_vllms() -> None:
    # pydantic runs the later-defined "before" validator first, for vLLM as here.
    body = {"prompt": "", "stream_options": {"include_usage": True}}
    with pytest.raises(ValidationError, match="Either prompt or prompt_embeds"):
        CompletionRequest.model_validate(body)


def test_vllm_validation_error_names_parameter_and_value() -> None:
    with pytest.raises(ValidationError) as info:
        CompletionRequest.model_validate({"prompt": "x", "logprobs": -5})
    assert "`logprobs` must be a positive value or -1. (parameter=logprobs, value=-5)" in str(
        info.value
    )


# --- vLLM: the serving checks, where vLLM makes them ---------------------------------


@pytest.mark.parametrize(
    ("body", "message", "status"),
    [
        ({"suffix": "!"}, "suffix is not currently supported", 400),
        ({"suffix": ""}, "suffix is not currently supported", 400),
        ({"model": "other"}, "The model `other` does not exist.", 404),
        (
            {"stream": True, "use_beam_search": True},
            "Streaming is not currently supported with beam search",
            400,
        ),
        ({"echo": True, "prompt_embeds": "AAAA"}, "Echo is unsupported with prompt embeds.", 400),
    ],
)
def test_vllm_returned_errors(body: dict[str, Any], message: str, status: int) -> None:
    with pytest.raises(ReturnedError) as info:
        vllm(prompt="x", **body)
    assert (info.value.message, info.value.status) == (message, status)


@pytest.mark.parametrize(
    ("body", "message", "parameter"),
    [
        ({"prompt": []}, "You must pass at least one prompt", None),
        ({"max_tokens": 0}, "max_tokens must be at least 1, got 0.", "max_tokens"),
        ({"max_tokens": -3}, "max_tokens must be at least 1, got -3.", "max_tokens"),
        ({"n": 0}, "n must be at least 1, got 0.", None),
        ({"n": 2, "temperature": 0}, "n must be 1 when using greedy sampling, got 2.", None),
        ({"temperature": 3}, "temperature must be in [0, 2], got 3.0.", "temperature"),
        ({"top_p": 0}, "top_p must be in (0, 1], got 0.0.", "top_p"),
        ({"stop": ["a", ""]}, "stop cannot contain an empty string.", None),
        ({"logit_bias": {"a": 1}}, "logit_bias contains key(s)", "logit_bias"),
        ({"max_tokens": 9000}, "max_tokens=9000cannot be greater than", "max_tokens"),
        ({"prompt": "w " * 8190, "max_tokens": 5}, "You passed 8190 input tokens", "input_tokens"),
    ],
)
def test_vllm_raised_errors(body: dict[str, Any], message: str, parameter: str | None) -> None:
    with pytest.raises(ValueError) as info:
        vllm(**{"prompt": "x", **body})
    assert message in str(info.value)
    error = vllm_completion.raised_error_info(info.value)
    assert (error["param"], error["code"], error["type"]) == (parameter, 400, "BadRequestError")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"logprobs": 21}, "Requested sample logprobs of 21, which is greater than max allowed"),
        ({"logprobs": -1}, f"Requested sample logprobs of {model.VOCAB_SIZE}"),
        ({"prompt": [[1], [model.VOCAB_SIZE]]}, f"Token id {model.VOCAB_SIZE} is out of vocab"),
        ({"prompt": [[]]}, "The decoder prompt cannot be empty"),
        ({"prompt": ["x", ""]}, "The decoder prompt cannot be empty"),
        ({"stop_token_ids": [-1]}, "token_id(s) [-1] in stop_token_ids contain out-of-vocab"),
    ],
)
def test_vllm_engine_errors_wait_for_the_first_output(body: dict[str, Any], message: str) -> None:
    answer = vllm(**{"prompt": "x", **body})
    assert answer.engine_error is not None and message in str(answer.engine_error)


# --- vLLM: the answers ---------------------------------------------------------------


def test_vllm_default_max_tokens_is_16() -> None:
    answer = vllm(prompt=" ".join(f"w{i}" for i in range(20))).answers[0]
    assert (len(answer.words), answer.finish, answer.stop_reason) == (16, "length", None)


def test_vllm_stop_and_max_tokens() -> None:
    stopped = vllm(prompt=PROMPT, stop=[" in"]).answers[0]
    assert ("".join(stopped.words), stopped.finish, stopped.stop_reason) == (
        " The weather",
        "stop",
        " in",
    )
    cut = vllm(prompt=PROMPT, max_tokens=2).answers[0]
    assert ("".join(cut.words), cut.finish) == (" The weather", "length")


def test_vllm_several_prompts_and_n_number_choices_prompt_major() -> None:
    answer = vllm(prompt=["a b", "c"], n=2, max_tokens=1)
    body = vllm_completion_output.completion(answer, "echo")
    assert [(c["index"], c["text"], c["finish_reason"]) for c in body["choices"]] == [
        (0, " a", "length"),
        (1, " a", "length"),
        (2, " c", "stop"),
        (3, " c", "stop"),
    ]
    # Prompt tokens once per prompt; completion tokens for every choice.
    assert body["usage"] == {
        "prompt_tokens": 3,
        "total_tokens": 7,
        "completion_tokens": 4,
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
    }


def test_vllm_echo_prepends_the_prompt_and_scores_it() -> None:
    answer = vllm(prompt=[7, 8], echo=True, logprobs=2)
    choice = vllm_completion_output.completion(answer, "echo")["choices"][0]
    assert choice["text"] == "7 8 7 8"
    assert choice["logprobs"] == {
        "text_offset": [0, 1, 3, 5],
        "token_logprobs": [None, 0.0, 0.0, 0.0],
        "tokens": ["7", " 8", " 7", " 8"],
        "top_logprobs": [
            None,
            {" 8": 0.0, "<|alt1|>": model.IMPOSSIBLE},
            {" 7": 0.0, "<|alt1|>": model.IMPOSSIBLE},
            {" 8": 0.0, "<|alt1|>": model.IMPOSSIBLE},
        ],
    }
    alt = str(model.alternative_id(2))
    assert choice["prompt_logprobs"] == [
        None,
        {
            "8": {"logprob": 0.0, "rank": 1, "decoded_token": " 8"},
            alt: {"logprob": model.IMPOSSIBLE, "rank": 2, "decoded_token": "<|alt1|>"},
        },
    ]


def test_vllm_echo_without_generation_is_the_prompt() -> None:
    answer = vllm(prompt=PROMPT, echo=True, max_tokens=0)
    body = vllm_completion_output.completion(answer, "echo")
    assert (body["choices"][0]["text"], body["choices"][0]["finish_reason"]) == (PROMPT, "length")
    assert body["usage"]["completion_tokens"] == 1  # the one token vLLM generates and hides
    chunks = [
        c
        for c, _ in vllm_completion_output.chunks(
            vllm(**{"prompt": PROMPT, "echo": True, "max_tokens": 0, "stream": True}), "echo"
        )
    ]
    assert [(c["choices"][0]["text"], c["choices"][0]["finish_reason"]) for c in chunks] == [
        (PROMPT, "length")
    ]


def test_vllm_stream_chunks_usage_and_offsets() -> None:
    answer = vllm(
        prompt=PROMPT,
        stream=True,
        logprobs=0,
        stream_options={"include_usage": True, "continuous_usage_stats": True},
    )
    chunks = list(vllm_completion_output.chunks(answer, "echo"))
    texts = [c["choices"][0]["text"] for c, _ in chunks[:-1]]
    assert texts == [" The", " weather", " in", " Paris", ""]
    first = chunks[0][0]["choices"][0]
    assert list(first) == [
        "index",
        "text",
        "logprobs",
        "finish_reason",
        "stop_reason",
        "prompt_token_ids",
        "token_ids",
    ]
    assert [c["choices"][0]["logprobs"]["text_offset"] for c, _ in chunks[:-1]] == [
        [0],
        [4],
        [12],
        [15],
        [],
    ]
    assert chunks[-2][0]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-2][0]["usage"] == {
        "prompt_tokens": 7,
        "total_tokens": 11,
        "completion_tokens": 4,
    }
    usage_chunk = chunks[-1][0]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 4
    assert [generated for _, generated in chunks] == [True] * 5 + [False]


def test_vllm_stream_interleaves_choices_and_echoes_once() -> None:
    answer = vllm(prompt=["a b", "c"], n=2, echo=True, stream=True)
    chunks = [c["choices"][0] for c, _ in vllm_completion_output.chunks(answer, "echo")]
    assert [(c["index"], c["text"]) for c in chunks] == [
        (0, "a b a"),
        (1, "a b a"),
        (2, "c c"),
        (3, "c c"),
        (0, " b"),
        (1, " b"),
        (2, ""),
        (3, ""),
        (0, ""),
        (1, ""),
    ]


def test_vllm_response_format_answers_json() -> None:
    answer = vllm(prompt=PROMPT, response_format={"type": "json_object"}, max_tokens=50)
    assert "".join(answer.answers[0].words) == '{"echo": "The weather in Paris"}'


def test_vllm_validation_error_message_keeps_vllms_extras() -> None:
    assert str(VllmValidationError("bad", "p", value=3)) == "bad (parameter=p, value=3)"
    assert str(VllmValidationError("bad", value=[1])) == "bad (value=[1])"
    assert str(VllmValidationError("bad")) == "bad"


# --- TGI -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "x"},
        {"prompt": ["x", "y"]},
        {"prompt": "x", "max_tokens": None, "stop": None, "seed": 1, "n": "ignored"},
        {"prompt": "x", "temperature": 1, "top_p": 0.5, "stream": False, "suffix": ""},
    ],
)
def test_tgi_completion_request_deserializes(body: dict[str, Any]) -> None:
    assert tgi_completion.request_ok(body)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"prompt": None},
        {"prompt": []},  # Prompt's try_from: "Empty array detected"
        {"prompt": [1, 2]},
        {"prompt": [[1, 2]]},
        {"prompt": ["x", 1]},
        {"prompt": "x", "stop": "y"},
        {"prompt": "x", "stream": None},
        {"prompt": "x", "max_tokens": -1},
        {"prompt": "x", "max_tokens": 1.5},
        {"prompt": "x", "max_tokens": 2**32},
        {"prompt": "x", "seed": -1},
        {"prompt": "x", "temperature": "hot"},
        {"prompt": "x", "model": 3},
    ],
)
def test_tgi_completion_request_refuses(body: dict[str, Any]) -> None:
    assert not tgi_completion.request_ok(body)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"temperature": -1}, "`temperature` must be strictly positive"),
        ({"repetition_penalty": 0}, "`repetition_penalty` must be strictly positive"),
        ({"frequency_penalty": 3}, "`frequency_penalty` must be >= -2.0 and <= 2.0"),
        ({"top_p": 1.0}, "`top_p` must be > 0.0 and < 1.0"),
        ({"max_tokens": 0}, "`max_new_tokens` must be strictly positive"),
        ({"stop": list("abcde")}, "`stop` supports up to 4 stop sequences. Given: 5"),
        ({"prompt": ""}, "`inputs` cannot be empty"),
        (
            {"max_tokens": 4095, "prompt": "two words"},
            "`inputs` tokens + `max_new_tokens` must be <= 1025. Given: 2 `inputs` tokens "
            "and 1024 `max_new_tokens`",
        ),
    ],
)
def test_tgi_completion_validation(body: dict[str, Any], problem: str) -> None:
    request = {"prompt": "x", **body}
    assert (
        tgi_completion.validation_error(request["prompt"], request, 1025, chunked=True) == problem
    )


def test_tgi_completion_length_check_by_era() -> None:
    body = {"prompt": "x", "max_tokens": 2000}
    assert tgi_completion.validation_error("x", body, 4096, chunked=True) is None
    assert (
        tgi_completion.validation_error("x", {**body, "temperature": 0}, 4096, chunked=True) is None
    )
    legacy = tgi_completion.validation_error("x", {**body, "max_tokens": 4096}, 4096, chunked=False)
    assert legacy is not None and "Given: 1 `inputs` tokens and 4096 `max_new_tokens`" in legacy


def tgi_generate(prompt: str, **body: Any) -> tgi_completion.TgiCompletion:
    return tgi_completion.generate(
        0, prompt, {"prompt": prompt, **body}, 4096, TgiContainer._stopping
    )


def test_tgi_completion_stops_at_token_boundaries_and_keeps_the_stop() -> None:
    stopped = tgi_generate(PROMPT, stop=[" in"])
    assert (stopped.text, stopped.finish, stopped.completion_tokens) == (
        " The weather in",
        "stop_sequence",
        3,
    )
    assert tgi_generate(PROMPT, stop=["ath"]).finish == "stop"  # inside a token: no stop
    assert (tgi_generate(PROMPT, max_tokens=1).text, tgi_generate(PROMPT, max_tokens=1).finish) == (
        " The",
        "length",
    )


def test_tgi_completion_final_and_stream_shapes() -> None:
    eos = tgi_generate(PROMPT)
    body = tgi_completion.final([eos], "echo", "3.3.6-native")
    assert list(body) == [
        "object",
        "id",
        "created",
        "model",
        "system_fingerprint",
        "choices",
        "usage",
    ]
    assert body["choices"] == [
        {"index": 0, "text": ECHO, "logprobs": None, "finish_reason": "stop"}
    ]
    events = tgi_completion.prompt_events(eos, "echo", "3.3.6-native")
    assert [list(e) for e in events[:1]] == [
        ["object", "id", "created", "choices", "model", "system_fingerprint"]
    ]
    assert [e["choices"][0]["finish_reason"] for e in events] == ["", "", "", "", "eos_token"]
    assert [e["choices"][0]["text"] for e in events] == [*model.tokens(ECHO), model.EOS_TEXT]
    assert "usage" not in events[0]
    assert events[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}


def test_tgi_completion_streams_interleave_token_by_token() -> None:
    merged = list(tgi_completion.interleave([[1, 2, 3], [10], [20, 21]]))  # type: ignore[list-item]
    assert merged == [1, 10, 20, 2, 21, 3]


def test_tgi_completion_refusals_come_first() -> None:
    assert tgi_completion.refusal({"prompt": "x", "suffix": ""}) == {
        "error": "Suffix is not supported and can be achieved by preprocessing the prompt.",
        "error_type": "suffix not supported",
    }
    assert tgi_completion.refusal({"prompt": ["x"] * 5}) == {
        "error": "Number of prompts exceeds the maximum allowed batch size of 4",
        "error_type": "batch size exceeded",
    }
    assert tgi_completion.refusal({"prompt": ["x"] * 4, "suffix": None}) is None


# --- LMI -----------------------------------------------------------------------------


def test_lmi_reports_a_returned_error_as_the_models_repr() -> None:
    error = ReturnedError("The model `x` does not exist.", 404, "NotFoundError")
    assert lmi.returned_error_text(error) == (
        "error=ErrorInfo(message='The model `x` does not exist.', type='NotFoundError', "
        "param=None, code=404)"
    )
    body = lmi.gson_error(lmi.returned_error_text(error), 500).decode()
    assert body.startswith('{"error":"error\\u003dErrorInfo(message\\u003d\\u0027The model')
    assert body.endswith(',"code":500}')
