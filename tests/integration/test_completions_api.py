"""POST /v1/completions end to end with the real openai SDK (and LangChain's legacy
`OpenAI` LLM, which calls the same route, as LlamaIndex's OpenAILike with
is_chat_model=False does) on every chat engine fake."""

from __future__ import annotations

import openai
import pytest
from langchain_openai import OpenAI as LangChainCompletions

from emd.local.gateway import LocalGateway

from .conftest import CHAT_ENGINES, ECHO, KEY, LMI, TGI, TGI_LEGACY

PROMPT = "Write one line.\nhello completion world"
ECHOED = "hello completion world"  # the echo engines answer a prompt's last line


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_create(client: openai.OpenAI, model: str) -> None:
    answer = client.completions.create(model=model, prompt=PROMPT, max_tokens=20)
    assert answer.object == "text_completion"
    assert answer.id.startswith("cmpl")
    assert answer.model == model
    (choice,) = answer.choices
    assert choice.text.strip() == ECHOED
    assert choice.finish_reason in ("stop", "length")
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_stream_with_usage(client: openai.OpenAI, model: str) -> None:
    stream = client.completions.create(
        model=model,
        prompt=PROMPT,
        max_tokens=20,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert len(texts) > 1  # streamed, not one piece
    assert "".join(texts).strip() == ECHOED
    assert all(c.object == "text_completion" and c.model == model for c in chunks)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_stream_without_usage_has_choices_on_every_chunk(client: openai.OpenAI, model: str) -> None:
    stream = client.completions.create(model=model, prompt=PROMPT, max_tokens=20, stream=True)
    assert all(chunk.choices for chunk in stream)


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_max_tokens_cuts_with_length(client: openai.OpenAI, model: str) -> None:
    answer = client.completions.create(model=model, prompt=PROMPT, max_tokens=1)
    assert answer.choices[0].finish_reason == "length"
    assert answer.choices[0].text.strip() == "hello"


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_stop_sequence_is_cut(client: openai.OpenAI, model: str) -> None:
    answer = client.completions.create(model=model, prompt=PROMPT, max_tokens=20, stop=["world"])
    assert answer.choices[0].text.strip() == "hello completion"


def test_vllm_echo_logprobs_and_several_choices(client: openai.OpenAI) -> None:
    answer = client.completions.create(
        model=ECHO, prompt=["one two", "three four"], max_tokens=5, n=2, logprobs=2, echo=True
    )
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    assert answer.choices[0].text.startswith("one two")
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.tokens
    assert len(logprobs.tokens) == len(logprobs.token_logprobs or [])
    assert len(logprobs.text_offset or []) == len(logprobs.tokens)


@pytest.mark.parametrize("model", CHAT_ENGINES)
def test_suffix_is_a_400_naming_it(client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=model, prompt=PROMPT, suffix="!")
    assert info.value.body["param"] == "suffix"  # type: ignore[index]


@pytest.mark.parametrize("model", [TGI, TGI_LEGACY])
@pytest.mark.parametrize("extra", [{"echo": True}, {"logprobs": 1}, {"n": 2}])
def test_tgi_refuses_what_it_lacks(client: openai.OpenAI, model: str, extra: dict) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=model, prompt=PROMPT, **extra)
    assert info.value.body["param"] == next(iter(extra))  # type: ignore[index]


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope/dev", prompt="hi")


def test_an_embeddings_model_is_a_wrong_family_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="multilingual-e5-small/local", prompt="hi")
    assert info.value.code == "wrong_model_family"


@pytest.mark.parametrize("model", [ECHO, TGI, LMI])
def test_langchain_legacy_llm(gateway: LocalGateway, model: str) -> None:
    llm = LangChainCompletions(
        model=model, base_url=gateway.base_url, api_key=KEY, max_tokens=20, max_retries=0
    )
    assert llm.invoke(PROMPT).strip() == ECHOED
    assert "".join(llm.stream(PROMPT)).strip() == ECHOED
