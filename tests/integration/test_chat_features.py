"""OpenAI chat features through the proxy on each engine that has them (the rows of
the README's engine table). vLLM: echo; TGI (3.2 and legacy) and LMI: their fakes."""

from __future__ import annotations

import openai
import pytest

from .conftest import ECHO, GHOST, LMI, SMOL, TGI, TGI_LEGACY

MESSAGE = "The weather in Paris is sunny"
USER = [{"role": "user", "content": MESSAGE}]
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
ALL = [ECHO, TGI, TGI_LEGACY, LMI]


@pytest.mark.parametrize("model", ALL)
@pytest.mark.parametrize("url", [PNG, "https://example.com/cat.png"])
def test_vision_image_parts_reach_a_vision_model(
    client: openai.OpenAI, model: str, url: str
) -> None:
    content = [
        {"type": "text", "text": "Describe"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}]
    )
    assert answer.choices[0].message.content == "Describe [1 image]"


def test_images_to_a_text_only_model_are_a_clear_400(client: openai.OpenAI) -> None:
    content = [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": PNG}}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=SMOL, messages=[{"role": "user", "content": content}])
    assert info.value.param == "messages.0.content.1"
    assert "images" in info.value.message


def test_tools_to_a_model_without_tools_are_a_clear_400(client: openai.OpenAI) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=GHOST, messages=USER, tools=[tool])  # type: ignore[list-item]
    assert info.value.param == "tools"


def test_reasoning_content_streams_and_folds(client: openai.OpenAI) -> None:
    extra = {"echo_reasoning": True}
    answer = client.chat.completions.create(model=ECHO, messages=USER, extra_body=extra)
    message = answer.choices[0].message
    assert message.content == MESSAGE
    assert message.model_extra["reasoning_content"] == f"Thinking about: {MESSAGE}"  # type: ignore[index]
    stream = client.chat.completions.create(
        model=ECHO, messages=USER, stream=True, extra_body=extra
    )
    reasoning, content = "", ""
    for chunk in stream:
        delta = chunk.choices[0].delta
        reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
        content += delta.content or ""
    assert reasoning == f"Thinking about: {MESSAGE}"
    assert content == MESSAGE


@pytest.mark.parametrize("model", [ECHO, LMI])
def test_logprobs(client: openai.OpenAI, model: str) -> None:
    answer = client.chat.completions.create(
        model=model, messages=USER, logprobs=True, top_logprobs=2
    )
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None and logprobs.content
    assert "".join(t.token for t in logprobs.content) == MESSAGE
    assert len(logprobs.content[0].top_logprobs) == 2


@pytest.mark.parametrize("model", [ECHO, LMI])
def test_n_choices(client: openai.OpenAI, model: str) -> None:
    answer = client.chat.completions.create(model=model, messages=USER, n=2)
    assert [c.index for c in answer.choices] == [0, 1]
    assert all(c.message.content == MESSAGE for c in answer.choices)
    stream = client.chat.completions.create(model=model, messages=USER, n=2, stream=True)
    texts = {0: "", 1: ""}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == {0: MESSAGE, 1: MESSAGE}


@pytest.mark.parametrize("model", [TGI, TGI_LEGACY])
def test_n_on_tgi_is_refused_instead_of_silently_ignored(client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=USER, n=2)
    assert info.value.param == "n"


@pytest.mark.parametrize("model", ALL)
def test_json_object_response_format(client: openai.OpenAI, model: str) -> None:
    answer = client.chat.completions.create(
        model=model, messages=USER, response_format={"type": "json_object"}
    )
    assert answer.choices[0].message.content == '{"echo": "The weather in Paris is sunny"}'


@pytest.mark.parametrize("model", ALL)
def test_sampling_and_engine_extras_are_accepted(client: openai.OpenAI, model: str) -> None:
    answer = client.chat.completions.create(
        model=model,
        messages=USER,
        temperature=0.2,
        top_p=0.9,
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.1,
        user="alice",
        extra_body={"top_k": 20, "repetition_penalty": 1.05},
    )
    assert answer.choices[0].message.content == MESSAGE


@pytest.mark.parametrize("model", ALL)
def test_stop_as_a_string(client: openai.OpenAI, model: str) -> None:
    answer = client.chat.completions.create(model=model, messages=USER, stop=" Paris")
    assert answer.choices[0].message.content == "The weather in"
    assert answer.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", ALL)
def test_no_hidden_max_tokens(client: openai.OpenAI, model: str) -> None:
    long = " ".join(f"w{i}" for i in range(3000))
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": long}]
    )
    assert answer.choices[0].message.content == long
    assert answer.choices[0].finish_reason == "stop"
