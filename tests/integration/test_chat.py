"""Chat through the whole local path with the real openai SDK: proxy -> boto3 ->
emulator -> container (SmolLM2 for real generation, echo where exact text matters)."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai

from emd.local.gateway import LocalGateway

from .conftest import ECHO, KEY, SCOPED_KEY, SMOL

PROMPT = [{"role": "user", "content": "Name three colours."}]


def test_models_list_shows_every_local_model(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {ECHO, SMOL} <= ids


def test_model_ids_with_a_slash_can_be_retrieved(client: openai.OpenAI) -> None:
    model = client.models.retrieve(SMOL)
    assert model.id == SMOL
    assert model.object == "model"


def test_scoped_key_sees_only_its_models(gateway: LocalGateway) -> None:
    scoped = openai.OpenAI(base_url=gateway.base_url, api_key=SCOPED_KEY, max_retries=0)
    assert [m.id for m in scoped.models.list()] == [ECHO]
    try:
        scoped.chat.completions.create(model=SMOL, messages=PROMPT)
    except openai.NotFoundError as exc:
        assert exc.code == "model_not_found"
    else:
        raise AssertionError("a scoped key reached a model it may not see")


def test_smollm2_answers_with_content_usage_and_finish_reason(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=SMOL, messages=PROMPT, max_tokens=40)
    assert completion.model == SMOL
    assert completion.object == "chat.completion"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content and choice.message.content.strip()
    assert choice.finish_reason in {"stop", "length"}
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert 0 < completion.usage.completion_tokens <= 40


def test_smollm2_streams_deltas_and_ends_cleanly(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=SMOL, messages=PROMPT, max_tokens=30, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.strip()
    assert all(c.model == SMOL for c in chunks)
    # Without include_usage no chunk may come without choices.
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason in {"stop", "length"}


def test_max_tokens_is_honoured(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=SMOL,
        messages=[{"role": "user", "content": "Write a long story about the sea."}],
        max_tokens=5,
    )
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5
    assert completion.choices[0].finish_reason == "length"


def test_include_usage_gives_a_final_usage_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=SMOL,
        messages=PROMPT,
        max_tokens=8,
        # Greedy: a sampled answer may end (EOS) before 8 tokens, which is no usage bug.
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert chunks[-2].choices[0].finish_reason == "length"
    assert last.usage.completion_tokens == 8
    assert all(c.choices for c in chunks[:-1])


def test_echo_stream_reproduces_the_message_exactly(client: openai.OpenAI) -> None:
    message = "The quick brown fox — jumps über the lazy dog 🦊"
    stream = client.chat.completions.create(
        model=ECHO, messages=[{"role": "user", "content": message}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream) == message


def test_bare_model_name_resolves_when_one_tag_is_deployed(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.model == ECHO
    assert completion.choices[0].message.content == "hi"


def test_stream_ends_with_done_on_the_wire(gateway: LocalGateway) -> None:
    body = {"model": ECHO, "messages": [{"role": "user", "content": "a b"}], "stream": True}
    with httpx.Client(timeout=10) as http:
        response = http.post(
            f"{gateway.base_url}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {KEY}"},
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("data: [DONE]\n\n")
    assert response.text.count("data: [DONE]") == 1


def test_async_client_chat_and_stream(gateway: LocalGateway) -> None:
    async def scenario() -> tuple[str, str]:
        async with openai.AsyncOpenAI(
            base_url=gateway.base_url, api_key=KEY, max_retries=0
        ) as aclient:
            completion = await aclient.chat.completions.create(model=SMOL, messages=PROMPT)
            stream = await aclient.chat.completions.create(
                model=SMOL, messages=PROMPT, max_tokens=10, stream=True
            )
            streamed = [c.choices[0].delta.content or "" async for c in stream]
            return completion.choices[0].message.content or "", "".join(streamed)

    full, streamed = asyncio.run(scenario())
    assert full.strip()
    assert streamed.strip()


def test_concurrent_requests_are_all_answered(gateway: LocalGateway) -> None:
    async def scenario() -> list[str]:
        async with openai.AsyncOpenAI(
            base_url=gateway.base_url, api_key=KEY, max_retries=0
        ) as aclient:
            calls = [
                aclient.chat.completions.create(
                    model=ECHO, messages=[{"role": "user", "content": f"message {i}"}]
                )
                for i in range(32)
            ]
            return [r.choices[0].message.content or "" for r in await asyncio.gather(*calls)]

    assert asyncio.run(scenario()) == [f"message {i}" for i in range(32)]


def test_disconnect_stops_a_real_generation(gateway: LocalGateway) -> None:
    container = gateway.stack.containers[SMOL]
    body = {
        "model": SMOL,
        "messages": [{"role": "user", "content": "Write a very long essay about rivers."}],
        "max_tokens": 3000,
        "stream": True,
    }
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST",
            f"{gateway.base_url}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {KEY}"},
        ) as response,
    ):
        events = (line for line in response.iter_lines() if line)
        for _ in range(3):
            assert next(events).startswith("data: ")
        assert container.active_generations == 1
    # 3000 tokens would take ~30 s; the cancelled generation ends at its next token.
    deadline = time.monotonic() + 10
    while container.active_generations:
        assert time.monotonic() < deadline, "generation kept running after the disconnect"
        time.sleep(0.02)
