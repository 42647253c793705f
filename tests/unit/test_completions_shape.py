"""Legacy completions over the stream pipeline: engine `text_completion` chunks in,
OpenAI's `text_completion` stream and answer out; what each engine is sent."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from emd_proxy.chunks import ChunkNormalizer, StreamFixer
from emd_proxy.engines.tgi import TgiEngine
from emd_proxy.engines.vllm import VllmEngine
from emd_proxy.errors import InvalidRequestError
from emd_proxy.registry import RegistryEntry
from emd_proxy.schemas.completions import CompletionRequest
from emd_proxy.shapes.completions import (
    ID_PREFIX,
    CompletionEvents,
    TextChunks,
    TextCompletionBuilder,
)
from emd_proxy.sse import DONE
from emd_proxy.streaming import chat_chunks, fold_into, sse_body, started

ENTRY = RegistryEntry(
    id="Qwen3-8B/dev",
    model="Qwen3-8B",
    tag="dev",
    endpoint="emd-qwen3-8b-dev",
    engine="vllm",
    families=["chat"],
)
USAGE = {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}


def request(**body: Any) -> CompletionRequest:
    return CompletionRequest.model_validate({"model": ENTRY.id, "prompt": "say hi", **body})


def engine_chunk(text: str, finish: str | None = None, logprobs: Any = None) -> bytes:
    chunk = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 7,
        "model": "/opt/ml/model",
        "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


USAGE_CHUNK = b"data: " + json.dumps({"id": "cmpl-1", "choices": [], "usage": USAGE}).encode()
STREAM = [engine_chunk("hi"), engine_chunk(" there", "length"), USAGE_CHUNK + b"\n\n", DONE]


async def parts(chunks: list[bytes]):
    for chunk in chunks:
        yield chunk


def batches(chunks: list[bytes], fixer: StreamFixer | None = None):
    return chat_chunks(
        parts(chunks), TextChunks(fixer or StreamFixer()), ChunkNormalizer(ENTRY.id, ID_PREFIX)
    )


def events(include_usage: bool) -> list[Any]:
    async def collect() -> list[bytes]:
        body = sse_body(
            await started(batches(STREAM)), CompletionEvents(include_usage=include_usage)
        )
        return [w async for w in body]

    frames = b"".join(asyncio.run(collect())).split(b"\n\n")
    return [f[6:].decode() if f == DONE[:-2] else json.loads(f[6:]) for f in frames if f]


def test_stream_is_text_completion_chunks_then_done() -> None:
    out = events(include_usage=False)
    assert out[-1] == "[DONE]"
    chunks = out[:-1]
    assert [c["choices"][0]["text"] for c in chunks] == ["hi", " there"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    for c in chunks:
        assert (c["object"], c["id"], c["model"], c["created"]) == (
            "text_completion",
            "cmpl-1",
            ENTRY.id,
            7,
        )
        assert "usage" not in c


def test_usage_chunk_only_when_asked() -> None:
    usage = events(include_usage=True)[-2]
    assert usage["choices"] == []
    assert usage["usage"] == USAGE


def test_fold_joins_text_and_logprob_lists() -> None:
    first = {"tokens": ["hi"], "token_logprobs": [-0.1], "top_logprobs": [{}], "text_offset": [0]}
    second = {
        "tokens": [" there"],
        "token_logprobs": [-0.2],
        "top_logprobs": [{}],
        "text_offset": [2],
    }
    stream = [engine_chunk("hi", None, first), engine_chunk(" there", "stop", second), DONE]
    answer = asyncio.run(fold_into(batches(stream), TextCompletionBuilder())).result(ENTRY.id)
    (choice,) = answer["choices"]
    assert choice["text"] == "hi there"
    assert choice["logprobs"]["tokens"] == ["hi", " there"]
    assert choice["logprobs"]["text_offset"] == [0, 2]
    assert choice["finish_reason"] == "stop"
    assert answer["object"] == "text_completion"
    assert answer["id"] == "cmpl-1"


def test_tgi_empty_finish_reason_is_unfinished_and_its_stop_is_cut() -> None:
    fixer = TgiEngine().fixer(request(stop=["END"]))
    stream = [engine_chunk("one E", ""), engine_chunk("ND", "stop_sequence"), DONE]
    answer = asyncio.run(fold_into(batches(stream, fixer), TextCompletionBuilder()))
    (choice,) = answer.result(ENTRY.id)["choices"]
    assert choice["text"] == "one "
    assert choice["finish_reason"] == "stop"


def payload(engine: Any, **body: Any) -> dict[str, Any]:
    return json.loads(engine.completion_call(request(**body), ENTRY).body)


def test_the_engine_gets_the_prompt_streamed_with_usage() -> None:
    body = payload(VllmEngine(), prompt=["a", "b"], echo=True, logprobs=2, n=2)
    assert body == {
        "prompt": ["a", "b"],
        "echo": True,
        "logprobs": 2,
        "n": 2,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_suffix_is_refused_on_every_engine() -> None:
    for engine in (VllmEngine(), TgiEngine()):
        with pytest.raises(InvalidRequestError) as info:
            payload(engine, suffix="!")
        assert info.value.param == "suffix"


@pytest.mark.parametrize(
    ("body", "param"),
    [({"n": 2}, "n"), ({"prompt": [1, 2]}, "prompt"), ({"echo": True}, "echo"),
     ({"logprobs": 1}, "logprobs"), ({"best_of": 2}, "best_of")],
)  # fmt: skip
def test_tgi_refuses_what_its_completions_lack(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        payload(TgiEngine(), **body)
    assert info.value.param == param


def test_empty_prompt_list_is_a_schema_error() -> None:
    with pytest.raises(ValueError):
        request(prompt=[])
