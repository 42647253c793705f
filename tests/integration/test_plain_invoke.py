"""Non-stream answers: one plain InvokeEndpoint when the request's max_tokens surely
fits SageMaker's 60 s limit at the model's decode speed (the engine's own non-stream
path and fields), otherwise streamed from the engine and folded (generation.py)."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from emd.local.emulator import EmulatorStats
from emd.local.gateway import LocalGateway

from .conftest import CHAT_ENGINES, ECHO, TGI, TGI_LEGACY, WEATHER_TOOL

HI = [{"role": "user", "content": "The weather in Paris is sunny"}]


@pytest.fixture
def stats(gateway: LocalGateway) -> EmulatorStats:
    assert gateway.stack.emulator is not None
    return gateway.stack.emulator.stats


def calls(stats: EmulatorStats, before: tuple[int, int]) -> tuple[int, int]:
    """(plain invokes, streams) since `before` (the emulator counts both as
    invocations)."""
    streams = stats.streams_opened - before[1]
    return stats.invocations - before[0] - streams, streams


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_a_bounded_answer_is_one_plain_invoke(
    client: openai.OpenAI, stats: EmulatorStats, model: str
) -> None:
    before = (stats.invocations, stats.streams_opened)
    completion = client.chat.completions.create(model=model, messages=HI, max_tokens=50)
    assert calls(stats, before) == (1, 0)
    (choice,) = completion.choices
    assert choice.message.content == "The weather in Paris is sunny"
    assert choice.finish_reason == "stop"
    assert completion.model == model and completion.id
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    # OpenAI's message keys, as the SDK's own objects carry them.
    raw = completion.model_dump()
    assert raw["choices"][0]["message"]["refusal"] is None
    assert raw["choices"][0]["message"]["annotations"] == []


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_an_unbounded_answer_streams_from_the_engine(
    client: openai.OpenAI, stats: EmulatorStats, model: str
) -> None:
    before = (stats.invocations, stats.streams_opened)
    completion = client.chat.completions.create(model=model, messages=HI)
    assert calls(stats, before) == (0, 1)
    assert completion.choices[0].message.content == "The weather in Paris is sunny"
    assert completion.model_dump()["choices"][0]["message"]["annotations"] == []


@pytest.mark.parametrize("model", CHAT_ENGINES)
@pytest.mark.parametrize("max_tokens", [50, None])
def test_both_paths_give_the_same_answer(
    client: openai.OpenAI, model: str, max_tokens: int | None
) -> None:
    """A stop sequence cut and named, and a tool call, alike on both paths."""
    kw: dict[str, Any] = {} if max_tokens is None else {"max_tokens": max_tokens}
    stopped = client.chat.completions.create(model=model, messages=HI, stop=["Paris"], **kw)
    choice = stopped.choices[0]
    assert (choice.message.content, choice.finish_reason) == ("The weather in ", "stop")
    assert choice.model_extra is not None and choice.model_extra["stop_reason"] == "Paris"
    called = client.chat.completions.create(model=model, messages=HI, tools=[WEATHER_TOOL], **kw)
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert call.id.startswith(("call_", "chatcmpl-tool-")) and len(call.id) > 6
    assert call.function.arguments.startswith("{")


def test_prompt_logprobs_come_from_the_plain_path(
    client: openai.OpenAI, stats: EmulatorStats
) -> None:
    """vLLM computes the prompt's logprobs on its non-stream path only, so such a
    request is a plain invoke even without max_tokens."""
    before = (stats.invocations, stats.streams_opened)
    completion = client.chat.completions.create(
        model=ECHO, messages=HI, extra_body={"prompt_logprobs": 2}
    )
    assert calls(stats, before) == (1, 0)
    prompt_logprobs = (completion.model_extra or {})["prompt_logprobs"]
    assert prompt_logprobs[0] is None
    assert len(prompt_logprobs) > 1 and len(prompt_logprobs[1]) == 3  # own token + 2


def test_prompt_logprobs_on_a_stream_are_vllms_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=ECHO, messages=HI, stream=True, extra_body={"prompt_logprobs": 1}
        )
    assert info.value.param == "prompt_logprobs"
    assert "not available when `stream=True`" in info.value.message


@pytest.mark.parametrize("model", [TGI, TGI_LEGACY])
def test_tgi_plain_answers_match_openai(client: openai.OpenAI, model: str) -> None:
    """TGI's non-stream answer: an empty id and the stop left in the text; the
    gateway gives a real id and cuts the stop, as on the stream."""
    completion = client.chat.completions.create(
        model=model, messages=HI, max_tokens=50, stop="sunny"
    )
    assert completion.id.startswith("chatcmpl-")
    assert completion.choices[0].message.content == "The weather in Paris is "


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_legacy_completions_take_the_same_two_paths(
    client: openai.OpenAI, stats: EmulatorStats, model: str
) -> None:
    prompt = "Write one line.\nhello completion world"
    for max_tokens, expected in ((20, (1, 0)), (None, (0, 1))):
        before = (stats.invocations, stats.streams_opened)
        kw: dict[str, Any] = {} if max_tokens is None else {"max_tokens": max_tokens}
        answer = client.completions.create(model=model, prompt=prompt, stop=["world"], **kw)
        assert calls(stats, before) == expected, max_tokens
        (choice,) = answer.choices
        assert choice.text.strip() == "hello completion"  # the stop cut on both paths
        assert choice.finish_reason == "stop"
        assert answer.model == model and answer.id.startswith("cmpl")
        assert answer.object == "text_completion"
