"""The fake engine containers on real loopback sockets, byte by byte: what the proxy's
adapters receive from vLLM (echo), TGI >= 3.2, TGI before 3.2 and DJL LMI. Each check
names the real engine behaviour it pins (sources in the containers' docstrings)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emd.local.containers.echo import EchoContainer
from emd.local.containers.lmi import LmiContainer
from emd.local.containers.tgi import TgiContainer
from emd.local.servers import BackgroundServers

from .conftest import WEATHER_TOOL

MESSAGE = "The weather in Paris"
CHAT = {"messages": [{"role": "user", "content": MESSAGE}]}
TOOL = WEATHER_TOOL
TOOLS = {**CHAT, "tools": [TOOL]}
TOOL_SCHEMA = TOOL["function"]["parameters"]


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, str]]:
    servers = BackgroundServers("engine-fakes")
    apps = {
        "vllm": EchoContainer(),
        "vllm-reasoning": EchoContainer(reasoning=True),
        "tgi": TgiContainer(),
        "tgi-legacy": TgiContainer(tool_format="legacy"),
        "lmi": LmiContainer(),
    }
    found = {name: servers.add(container.app()) for name, container in apps.items()}
    servers.start()
    yield found
    servers.stop()


def post(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/invocations", json=body, timeout=10)


def sse_events(text: str) -> list[Any]:
    """The `data:` payloads of an SSE body, checking the framing on the way."""
    assert text.endswith("data: [DONE]\n\n")
    events = text.split("\n\n")[:-1]
    assert all(e.startswith("data: ") for e in events)
    return [json.loads(e[6:]) for e in events[:-1]]


def tool_deltas(events: list[dict[str, Any]]) -> list[Any]:
    return [
        c["choices"][0]["delta"]["tool_calls"]
        for c in events
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]


# --- vLLM (the echo container) --------------------------------------------------------


def test_vllm_stream_framing_and_usage_chunk(urls: dict[str, str]) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = post(urls["vllm"], body)
    assert response.headers["content-type"].startswith("text/event-stream")
    # pydantic's compact JSON, fields in vLLM's declaration order.
    assert response.text.startswith('data: {"id":"chatcmpl-')
    first, *tokens, last, usage = sse_events(response.text)
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert first["prompt_token_ids"] is None and "token_ids" not in first["choices"][0]
    assert "".join(c["choices"][0]["delta"]["content"] for c in tokens) == MESSAGE
    assert all(c["choices"][0]["token_ids"] is None for c in tokens)
    assert last["choices"][0] | {"delta": None} == {
        "index": 0,
        "delta": None,
        "logprobs": None,
        "finish_reason": "stop",
        "stop_reason": None,
        "token_ids": None,
    }
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 4, "total_tokens": 8, "completion_tokens": 4}


def test_vllm_auto_tool_stream_is_hermes_shaped(urls: dict[str, str]) -> None:
    events = sse_events(post(urls["vllm"], {**TOOLS, "stream": True}).text)
    deltas = [c["choices"][0]["delta"] for c in events[1:]]
    first = deltas[0]
    assert first["content"] is None
    [call] = first["tool_calls"]
    assert call["id"].startswith("chatcmpl-tool-") and len(call["id"]) == 14 + 32
    assert call | {"id": None} == {
        "id": None,
        "type": "function",
        "index": 0,
        "function": {"name": "get_weather"},  # the name alone, no "arguments" yet
    }
    fragments = [d["tool_calls"][0] for d in deltas[1:-1]]
    assert len(fragments) > 3
    assert all(f.keys() == {"index", "function"} for f in fragments)
    assert json.loads("".join(f["function"]["arguments"] for f in fragments)) == {"city": MESSAGE}
    assert deltas[-1] == {}
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_vllm_required_and_named_tool_streams(urls: dict[str, str]) -> None:
    required = tool_deltas(
        sse_events(post(urls["vllm"], {**TOOLS, "tool_choice": "required", "stream": True}).text)
    )
    assert required[0][0]["function"]["name"] == "get_weather"
    assert "arguments" in required[0][0]["function"]  # name and first fragment together
    assert all(d[0]["function"]["name"] is None for d in required[1:])  # "name": null
    named = {"type": "function", "function": {"name": "get_weather"}}
    events = sse_events(post(urls["vllm"], {**TOOLS, "tool_choice": named, "stream": True}).text)
    assert events[-1]["choices"][0]["finish_reason"] == "stop"  # not "tool_calls"
    assert "name" not in tool_deltas(events)[1][0]["function"]


def test_vllm_parallel_calls_and_round_trip(urls: dict[str, str]) -> None:
    other = {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}}
    answer = post(urls["vllm"], {**CHAT, "tools": [TOOL, other]}).json()
    message = answer["choices"][0]["message"]
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["get_weather", "other"]
    assert message["content"] is None
    single = post(urls["vllm"], {**CHAT, "tools": [TOOL, other], "parallel_tool_calls": False})
    assert len(single.json()["choices"][0]["message"]["tool_calls"]) == 1
    history = [
        *CHAT["messages"],
        {"role": "assistant", "content": None, "tool_calls": message["tool_calls"]},
        {"role": "tool", "tool_call_id": "x", "content": "sunny"},
    ]
    final = post(urls["vllm"], {"messages": history, "tools": [TOOL]}).json()
    assert final["choices"][0]["message"]["content"] == "Tool result: sunny"
    assert "tool_calls" not in final["choices"][0]["message"]  # dropped when empty


def test_vllm_reasoning_n_and_logprobs(urls: dict[str, str]) -> None:
    body = {**CHAT, "n": 2, "logprobs": True, "top_logprobs": 2, "stream": True}
    events = sse_events(post(urls["vllm-reasoning"], body).text)
    indexes = [c["choices"][0]["index"] for c in events]
    assert indexes[:4] == [0, 1, 0, 1]  # role chunks, then the choices interleaved
    reasoning = "".join(
        c["choices"][0]["delta"].get("reasoning", "")
        for c in events
        if c["choices"][0]["index"] == 0
    )
    assert reasoning == f"Thinking about: {MESSAGE}"
    entry = events[2]["choices"][0]["logprobs"]["content"][0]
    assert entry["token"] == "Thinking" and entry["bytes"] == list(b"Thinking")
    assert len(entry["top_logprobs"]) == 2
    message = post(urls["vllm-reasoning"], CHAT).json()["choices"][0]["message"]
    assert (message["reasoning"], message["content"]) == (f"Thinking about: {MESSAGE}", MESSAGE)


def test_vllm_validation_errors_on_the_sagemaker_route(urls: dict[str, str]) -> None:
    named = {"type": "function", "function": {"name": "nope"}}
    response = post(urls["vllm"], {**TOOLS, "tool_choice": named})
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "Cannot find suitable handler for request. "
            "Expected one of: ['ChatCompletionRequest', 'CompletionRequest']",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }
    wrong_model = post(urls["vllm"], {**CHAT, "model": "other"})
    assert wrong_model.status_code == 404
    assert wrong_model.json()["error"]["type"] == "NotFoundError"


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": []},
        {"tool_choice": "auto"},
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        {"top_logprobs": 2},
        {"stream_options": {"include_usage": True}},
    ],
    ids=["empty-tools", "choice-without-tools", "unknown-tool", "top-logprobs", "stream-options"],
)
def test_vllm_hides_request_rule_failures_behind_no_handler(
    urls: dict[str, str], extra: dict[str, Any]
) -> None:
    # What the gateway pre-validates (schemas/chat_rules.py): on vLLM's SageMaker route
    # the client would only learn this.
    response = post(urls["vllm"], {**CHAT, **extra})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("Cannot find suitable handler")


# --- TGI >= 3.2 ----------------------------------------------------------------------


def test_tgi_chunks_are_tagged_and_have_no_role_chunk(urls: dict[str, str]) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    text = post(urls["tgi"], body).text
    assert text.startswith('data: {"object":"chat.completion.chunk","id":"","created":')
    *tokens, last, usage = sse_events(text)
    assert [c["choices"][0]["delta"] for c in tokens] == [
        {"role": "assistant", "content": w} for w in ["The", " weather", " in", " Paris"]
    ]
    assert all(c["usage"] is None and c["system_fingerprint"] == "3.3.6-native" for c in tokens)
    assert last["choices"][0]["delta"] == {"role": "assistant", "content": ""}  # the EOS token
    assert last["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 4


def test_tgi_tool_calls(urls: dict[str, str]) -> None:
    answer = post(urls["tgi"], TOOLS).json()
    assert list(answer) == [
        "object",
        "id",
        "created",
        "model",
        "system_fingerprint",
        "choices",
        "usage",
    ]
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"] == {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "0",
                "type": "function",
                "function": {
                    "description": None,
                    "name": "get_weather",
                    "arguments": '{"city":"The weather in Paris"}',
                },
            }
        ],
    }
    events = sse_events(post(urls["tgi"], {**TOOLS, "stream": True}).text)
    assert all(c["choices"][0]["finish_reason"] is None for c in events)  # none at all
    calls = [d[0] for d in tool_deltas(events)]
    assert calls[0] == {
        "index": 0,
        "id": "0",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{"},
    }
    assert all(c["id"] == "0" and c["function"]["name"] is None for c in calls[1:])
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": MESSAGE}


def test_tgi_stop_sequence_is_kept(urls: dict[str, str]) -> None:
    choice = post(urls["tgi"], {**CHAT, "stop": [" in"]}).json()["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == (
        "The weather in",
        "stop_sequence",
    )
    # Not a TGI field: the answer is not limited.
    full = post(urls["tgi"], {**CHAT, "max_completion_tokens": 1}).json()["choices"][0]
    assert full["message"]["content"] == MESSAGE


def test_tgi_errors(urls: dict[str, str]) -> None:
    tool_error = post(urls["tgi"], {**TOOLS, "tool_choice": "nope"})
    assert tool_error.status_code == 422
    assert tool_error.json() == {
        "error": "Tool error: Tool with name nope not found",
        "error_type": "tool_error",
    }
    invalid = post(urls["tgi"], {**CHAT, "top_p": 1.0})
    assert invalid.status_code == 422
    assert invalid.json() == {
        "error": "Input validation error: `top_p` must be > 0.0 and < 1.0",
        "error_type": "validation",
    }
    streamed = post(urls["tgi"], {**CHAT, "top_p": 1.0, "stream": True})
    assert streamed.status_code == 200  # the error comes inside the stream
    assert sse_events(streamed.text) == [
        {
            "error": {
                "message": "Input validation error: `top_p` must be > 0.0 and < 1.0",
                "http_status_code": 422,
            }
        }
    ]
    shapeless = post(urls["tgi"], {"prompt_of_sorts": 1})
    assert shapeless.status_code == 422
    assert shapeless.headers["content-type"].startswith("text/plain")
    assert "untagged enum SagemakerRequest" in shapeless.text


@pytest.mark.parametrize("era", ["tgi", "tgi-legacy"])
def test_tgi_refuses_openai_shapes_its_serde_cannot_read(urls: dict[str, str], era: str) -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "W", "schema": TOOL_SCHEMA}}
    for extra in (
        {"response_format": schema},
        {"response_format": {"type": "json_object"}},
        {"stop": " in"},
        {"logit_bias": {"1": 1.0}},
    ):
        refused = post(urls[era], {**CHAT, **extra})
        assert refused.status_code == 422, extra
        assert refused.headers["content-type"].startswith("text/plain")
        assert refused.text.startswith(
            "Failed to deserialize the JSON body into the target type: data did not match "
            "any variant of untagged enum SagemakerRequest"
        )


@pytest.mark.parametrize("era", ["tgi", "tgi-legacy"])
def test_tgi_json_grammar_is_honoured(urls: dict[str, str], era: str) -> None:
    grammar = {"type": "json", "value": TOOL_SCHEMA}
    answer = post(urls[era], {**CHAT, "response_format": grammar}).json()
    assert json.loads(answer["choices"][0]["message"]["content"]) == {"city": MESSAGE}
    body = {**CHAT, "response_format": grammar, "stream": True}
    text = "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in sse_events(post(urls[era], body).text)
        if e["choices"]
    )
    assert json.loads(text) == {"city": MESSAGE}
    shapeless = post(urls[era], {**CHAT, "response_format": {"type": "json", "value": {}}})
    assert shapeless.status_code == 422
    assert shapeless.json() == {
        "error": "Input validation error: grammar is not valid: Grammar must have a "
        "'properties' field",
        "error_type": "validation",
    }


# --- TGI before 3.2.0 ---------------------------------------------------------------


def test_tgi_legacy_tool_calls(urls: dict[str, str]) -> None:
    message = post(urls["tgi-legacy"], TOOLS).json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["arguments"] == {"city": MESSAGE}  # an object
    body = {**TOOLS, "stream": True, "stream_options": {"include_usage": True}}
    events = sse_events(post(urls["tgi-legacy"], body).text)
    calls = tool_deltas(events)
    assert all(isinstance(c, dict) for c in calls)  # one object, not a list
    assert calls[0] == {
        "index": 0,
        "id": "",
        "type": "function",
        "function": {"name": None, "arguments": '{"'},
    }
    assert "".join(c["function"]["arguments"] for c in calls).startswith(
        '{"function": {"_name": "get_weather"'
    )
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["usage"]["completion_tokens"] > 0  # usage rides on the last chunk
    assert post(urls["tgi-legacy"], {**CHAT, "logit_bias": {"1": 1.0}}).status_code == 422


# --- LMI ------------------------------------------------------------------------------


def test_lmi_stream_is_json_lines_without_done(urls: dict[str, str]) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = post(urls["lmi"], body)
    assert response.headers["content-type"] == "application/jsonlines"
    text = response.text
    assert "data:" not in text and "[DONE]" not in text
    assert text.endswith("}\n\n")  # vLLM's [DONE] became an empty line
    lines = text.split("\n")[:-2]
    chunks = [json.loads(line) for line in lines]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "lmi" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == MESSAGE
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4


def test_lmi_non_stream_and_tools(urls: dict[str, str]) -> None:
    response = post(urls["lmi"], TOOLS)
    assert response.headers["content-type"].startswith("application/json")
    assert response.text.endswith("}\n")
    call = response.json()["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"city": MESSAGE}


def test_lmi_input_errors_are_gson_424(urls: dict[str, str]) -> None:
    named = {"type": "function", "function": {"name": "nope"}}
    response = post(urls["lmi"], {**TOOLS, "tool_choice": named})
    assert response.status_code == 424
    assert response.text.startswith(
        '{"error":"Input parsing failed: 1 validation error for ChatCompletionRequest'
    )
    assert "\\u003d" in response.text and response.text.endswith(',"code":424}')
    assert "does not match any of the specified `tools`" in response.json()["error"]
    missing = post(urls["lmi"], {"nothing": True})
    assert missing.json() == {
        "error": "Input parsing failed: invalid payload. must contain prompt, inputs, or messages",
        "code": 424,
    }


# --- legacy completions (`prompt`) ----------------------------------------------------

PROMPT = f"Say it again\n{MESSAGE}"
COMPLETION = {"prompt": PROMPT}


def test_vllm_completion_stream_framing(urls: dict[str, str]) -> None:
    body = {**COMPLETION, "stream": True, "stream_options": {"include_usage": True}}
    response = post(urls["vllm"], body)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.startswith('data: {"id":"cmpl-')
    *tokens, last, usage = sse_events(response.text)
    assert {c["object"] for c in [*tokens, last, usage]} == {"text_completion"}
    assert "".join(c["choices"][0]["text"] for c in tokens) == f" {MESSAGE}"
    assert last["choices"] == [
        {
            "index": 0,
            "text": "",
            "logprobs": None,
            "finish_reason": "stop",
            "stop_reason": None,
            "prompt_token_ids": None,
            "token_ids": None,
        }
    ]
    assert usage["choices"] == [] and "system_fingerprint" not in usage
    assert usage["usage"] == {"prompt_tokens": 7, "total_tokens": 11, "completion_tokens": 4}


def test_vllm_completion_non_stream(urls: dict[str, str]) -> None:
    response = post(urls["vllm"], {**COMPLETION, "echo": True, "max_tokens": 2, "n": 2})
    assert response.status_code == 200
    body = response.json()
    assert list(body) == [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "service_tier",
        "system_fingerprint",
        "usage",
        "kv_transfer_params",
        "ec_transfer_params",
        "metrics",
    ]
    assert body["id"].startswith("cmpl-") and body["object"] == "text_completion"
    assert [(c["index"], c["text"], c["finish_reason"]) for c in body["choices"]] == [
        (0, f"{PROMPT} The weather", "length"),
        (1, f"{PROMPT} The weather", "length"),
    ]
    assert body["usage"]["completion_tokens"] == 4


def test_vllm_completion_errors_where_vllm_raises_them(urls: dict[str, str]) -> None:
    suffix = post(urls["vllm"], {**COMPLETION, "suffix": "!"})
    assert suffix.status_code == 400
    assert suffix.json() == {
        "error": {
            "message": "suffix is not currently supported",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }
    # A request CompletionRequest refuses gets the route's generic answer.
    refused = post(urls["vllm"], {"prompt": [1, "a"]})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith("Cannot find suitable handler")
    # Sampling parameters fail before the stream starts; the engine's checks inside it.
    assert post(urls["vllm"], {**COMPLETION, "stream": True, "max_tokens": 0}).status_code == 400
    streamed = post(urls["vllm"], {"prompt": [[1], [10**6]], "stream": True})
    assert streamed.status_code == 200
    assert sse_events(streamed.text) == [
        {
            "error": {
                "message": "Token id 1000000 is out of vocabulary",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        }
    ]


@pytest.mark.parametrize("era", ["tgi", "tgi-legacy"])
def test_tgi_completion_stream_and_final(urls: dict[str, str], era: str) -> None:
    response = post(urls[era], {"prompt": [PROMPT, "Hi"], "stream": True, "n": 3})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.startswith('data: {"object":"text_completion","id":"",')
    events = sse_events(response.text)
    by_prompt = [[e for e in events if e["choices"][0]["index"] == i] for i in (0, 1)]
    assert [len(p) for p in by_prompt] == [5, 2]  # `n` is no TGI field: one choice each
    assert [e["choices"][0]["index"] for e in events[:4]] == [0, 1, 0, 1]  # interleaved
    *tokens, last = by_prompt[0]
    assert "".join(e["choices"][0]["text"] for e in tokens) == f" {MESSAGE}"
    assert {e["choices"][0]["finish_reason"] for e in tokens} == {""}
    assert all("usage" not in e for e in tokens)
    assert last["choices"][0] == {
        "index": 0,
        "text": "</s>",
        "logprobs": None,
        "finish_reason": "eos_token",
    }
    assert last["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    final = post(urls[era], {"prompt": [PROMPT, "Hi"], "max_tokens": 2}).json()
    assert final["object"] == "text_completion" and final["id"] == ""
    assert [(c["index"], c["text"], c["finish_reason"]) for c in final["choices"]] == [
        (0, " The weather", "length"),
        (1, " Hi", "stop"),
    ]
    assert final["usage"] == {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11}


def test_tgi_completion_errors(urls: dict[str, str]) -> None:
    suffix = post(urls["tgi"], {**COMPLETION, "suffix": "!"})
    assert (suffix.status_code, suffix.json()) == (
        422,
        {
            "error": "Suffix is not supported and can be achieved by preprocessing the prompt.",
            "error_type": "suffix not supported",
        },
    )
    token_ids = post(urls["tgi"], {"prompt": [1, 2, 3]})
    assert token_ids.status_code == 422 and token_ids.headers["content-type"].startswith(
        "text/plain"
    )
    assert "did not match any variant of untagged enum SagemakerRequest" in token_ids.text
    invalid = post(urls["tgi"], {**COMPLETION, "top_p": 1.0})
    assert (invalid.status_code, invalid.json()["error_type"]) == (422, "validation")
    streamed = post(urls["tgi"], {"prompt": ["", "Hi"], "stream": True})
    assert streamed.status_code == 200
    events = sse_events(streamed.text)
    assert events[0] == {
        "error": {
            "message": "Input validation error: `inputs` cannot be empty",
            "http_status_code": 422,
        }
    }
    assert events[-1]["choices"][0]["finish_reason"] == "eos_token"  # the other prompt answers


def test_lmi_completion_json_lines_and_json(urls: dict[str, str]) -> None:
    body = {**COMPLETION, "stream": True, "stream_options": {"include_usage": True}}
    response = post(urls["lmi"], body)
    assert response.headers["content-type"] == "application/jsonlines"
    text = response.text
    assert "data:" not in text and "[DONE]" not in text and text.endswith("}\n\n")
    *tokens, last, usage = [json.loads(line) for line in text.split("\n")[:-2]]
    assert all(c["object"] == "text_completion" and c["model"] == "lmi" for c in tokens)
    assert "".join(c["choices"][0]["text"] for c in tokens) == f" {MESSAGE}"
    assert last["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 4
    final = post(urls["lmi"], {**COMPLETION, "messages": CHAT["messages"]})  # prompt wins
    assert final.text.endswith("}\n") and final.json()["object"] == "text_completion"


def test_lmi_completion_errors(urls: dict[str, str]) -> None:
    parse = post(urls["lmi"], {"prompt": "x", "logprobs": -5})
    assert parse.status_code == 424
    assert parse.json()["error"].startswith(
        "Input parsing failed: 1 validation error for CompletionRequest"
    )
    returned = post(urls["lmi"], {**COMPLETION, "suffix": "!"})
    assert returned.status_code == 500
    assert returned.json() == {
        "error": "error=ErrorInfo(message='suffix is not currently supported', "
        "type='BadRequestError', param=None, code=400)",
        "code": 500,
    }
    raised = post(urls["lmi"], {**COMPLETION, "max_tokens": 0})
    assert raised.status_code == 424
    assert raised.json()["message"] == (
        "Async Inference Failure service.invoke_handler_async() failure"
    )
    streamed = post(urls["lmi"], {"prompt": [[1], [10**6]], "stream": True})
    assert streamed.status_code == 200
    assert [json.loads(line) for line in streamed.text.split("\n")[:-2]] == [
        {
            "error": {
                "message": "Token id 1000000 is out of vocabulary",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        }
    ]
