"""The stream pipeline (streaming.py) over a vLLM-shaped upstream: re-splitting parts,
the chat renderer, keep-alives, errors before and after the start, and `[DONE]`."""

from __future__ import annotations

import asyncio
import json
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emd_proxy.chunks import ChunkNormalizer, StreamFixer
from emd_proxy.errors import InvalidRequestError, UpstreamError
from emd_proxy.shapes.chat import ChatEvents
from emd_proxy.shapes.raw import RawEvents
from emd_proxy.sse import DONE, KEEPALIVE
from emd_proxy.streaming import StreamAborted, chat_chunks, fold, sse_body, started

MODEL = "Qwen3-8B/dev"


def batches_of(source, on_usage=None):
    return chat_chunks(source, StreamFixer(), ChunkNormalizer(MODEL), on_usage)


# --- complete: a non-streaming answer folded from the engine's stream -------------------


def test_complete_folds_the_stream_into_one_completion() -> None:
    raw = sse(chunk("Hel")) + sse(chunk("lo")) + sse(chunk(finish="stop"))
    raw += sse(chunk(usage=True)) + b"data: [DONE]\n\n"
    completion = asyncio.run(fold(batches_of(parts_of(raw)))).result(MODEL)
    assert completion["object"] == "chat.completion"
    assert completion["model"] == MODEL
    assert completion["id"] == "c"
    assert completion["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert completion["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"data: <html>502 Bad Gateway</html>", "unreadable"),
        (b"data: [1, 2]", "unexpected"),
        (b'data: "text"', "unexpected"),
        # An engine's failure: a fixed message, the container's text only in the log.
        (b'data: {"error": {"message": "CUDA out of memory", "code": 500}}', "model failed"),
        (b'data: {"object": "error", "message": "old style", "code": 500}', "model failed"),
        (b'data: {"error": "plain"}', "model failed"),
    ],
)
def test_complete_rejects_bad_chunks(line: bytes, expected: str) -> None:
    with pytest.raises(UpstreamError) as info:
        asyncio.run(fold(batches_of(parts_of(line + b"\n\n"))))
    assert expected in info.value.message
    assert not any(word in info.value.message for word in ("CUDA", "old style", "plain"))
    assert info.value.status == 502


# --- sse_body ------------------------------------------------------------------------


def chunk(content: str | None = None, finish: str | None = None, usage: bool = False) -> dict:
    if usage:
        return {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "/opt/ml/model",
            "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        }
    delta = {} if content is None else {"content": content}
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "/opt/ml/model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def sse(obj) -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


VLLM_STREAM = (
    sse(chunk(""))
    + sse(chunk("héllo"))
    + sse(chunk(" 世界"))
    + sse(chunk(None, "stop"))
    + sse(chunk(usage=True))
    + b"data: [DONE]\n\n"
)


def cut(data: bytes, offsets: list[int]) -> list[bytes]:
    bounds = [0, *offsets, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


async def parts_of(*parts: bytes | None):
    for part in parts:
        await asyncio.sleep(0)
        yield part


def run(parts: list[bytes | None], include_usage: bool = False) -> list[bytes]:
    async def source():
        for part in parts:
            await asyncio.sleep(0)
            yield part

    return run_source(source(), include_usage)


def run_source(source, include_usage: bool = False) -> list[bytes]:
    """The route's flow: the first batch read before the response, then SSE."""

    async def collect():
        batches = await started(batches_of(source))
        stream = sse_body(batches, ChatEvents(include_usage=include_usage))
        return [out async for out in stream]

    return asyncio.run(collect())


def decoded(writes: list[bytes]) -> list:
    """Output writes (each one or more events) -> parsed data payloads ('[DONE]' kept as
    a string)."""
    out = []
    for write in writes:
        assert write.endswith(b"\n\n")
    for frame in (e + b"\n\n" for w in writes for e in w.split(b"\n\n") if e):
        if frame.startswith(b":"):
            out.append("keep-alive")
            continue
        assert frame.startswith(b"data: ")
        data = frame[len(b"data: ") : -2]
        out.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return out


def awkward_offsets(data: bytes) -> list[int]:
    """Inside `data:`, inside multi-byte characters, between the two newlines."""
    offsets = {2, data.index(b"\n") + 1, data.index("é".encode()) + 1}
    offsets.add(data.index("世".encode()) + 1)
    offsets.add(data.index("世".encode()) + 2)
    offsets.add(data.index(b"[DONE]") + 3)
    return sorted(offsets)


def test_stream_split_at_awkward_places() -> None:
    events = run(cut(VLLM_STREAM, awkward_offsets(VLLM_STREAM)))
    assert events[-1] == DONE
    out = decoded(events)
    assert out[-1] == "[DONE]"
    chunks = out[:-1]
    assert all(c["model"] == MODEL for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "héllo 世界"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"] for c in chunks)  # the usage chunk was not asked for


def test_stream_one_byte_at_a_time_is_the_same() -> None:
    one_by_one = [VLLM_STREAM[i : i + 1] for i in range(len(VLLM_STREAM))]
    assert b"".join(run(one_by_one)) == b"".join(run([VLLM_STREAM]))


def test_chunks_that_arrive_together_go_out_in_one_write() -> None:
    writes = run([VLLM_STREAM])
    assert len(writes) == 2  # the answer, then [DONE]
    assert [c["choices"][0]["delta"].get("content") for c in decoded(writes[:1])] == [
        "",
        "héllo",
        " 世界",
        None,
    ]


def test_each_part_goes_out_before_the_next_is_read() -> None:
    parts = [sse(chunk("")), sse(chunk("a")), sse(chunk("b")), sse(chunk(None, "stop"))]
    log: list[str] = []

    async def source():
        for number, part in enumerate(parts):
            log.append(f"read {number}")
            yield part

    async def collect() -> None:
        batches = await started(batches_of(source()))
        async for write in sse_body(batches, ChatEvents(include_usage=False)):
            log.append(f"write {len(log) // 2}" if len(decoded([write])) == 1 else "write many")

    asyncio.run(collect())
    # Each write holds one chunk ([DONE] last), made before the next part is read.
    assert log == [*(f"{step} {n}" for n in range(4) for step in ("read", "write")), "write 4"]


def test_usage_chunk_is_kept_when_asked_for() -> None:
    out = decoded(run([VLLM_STREAM], include_usage=True))
    assert out[-2]["choices"] == []
    assert out[-2]["usage"]["total_tokens"] == 3
    assert out[-2]["model"] == MODEL
    assert out[-1] == "[DONE]"


def test_crlf_stream() -> None:
    out = decoded(run([VLLM_STREAM.replace(b"\n", b"\r\n")]))
    assert len(out) == 5  # 4 chunks with choices + [DONE]
    assert out[-1] == "[DONE]"


def test_none_parts_become_keep_alive_comments() -> None:
    parts = [None, *cut(VLLM_STREAM, [5]), None]
    events = run(parts)
    assert events[0] == KEEPALIVE
    assert KEEPALIVE in events[1:-1]
    assert events[-1] == DONE
    assert events.count(DONE) == 1


def test_upstream_error_line_is_one_error_event_then_done() -> None:
    error = {"error": {"message": "CUDA out of memory", "type": "InternalServerError"}}
    stream = sse(chunk("a")) + sse(error) + sse(chunk("never"))
    out = decoded(run(cut(stream, [7, 40])))
    assert out[0]["choices"][0]["delta"]["content"] == "a"
    errors = [o for o in out if isinstance(o, dict) and "error" in o]
    assert len(errors) == 1
    assert errors[0]["error"]["type"] == "upstream_error"
    assert "CUDA out of memory" not in errors[0]["error"]["message"]  # logged, not sent
    assert out[-1] == "[DONE]"
    assert out[-2] is errors[0]
    assert len(out) == 3


def test_stream_without_done_still_ends_with_done() -> None:
    events = run([sse(chunk("a")), sse(chunk(None, "length"))])
    assert events[-1] == b"data: [DONE]\n\n"
    assert len(decoded(events)) == 3


def test_json_lines_without_newline_at_the_end_are_flushed() -> None:
    lines = json.dumps(chunk("a")) + "\n" + json.dumps(chunk("b"))
    out = decoded(run([lines.encode()]))
    assert [o["choices"][0]["delta"]["content"] for o in out[:-1]] == ["a", "b"]
    assert out[-1] == "[DONE]"


def test_garbage_as_the_first_chunk_fails_before_the_response_starts() -> None:
    with pytest.raises(UpstreamError):
        run([b'data: {"id": "c", "choi\n\n'])


def test_garbage_json_later_is_an_error_event_then_done() -> None:
    out = decoded(run([sse(chunk("a")), b'data: {"id": "c", "choi\n\n']))[1:]
    assert out == [
        {
            "error": {
                "message": out[0]["error"]["message"],
                "type": "upstream_error",
                "param": None,
                "code": "bad_upstream_response",
            }
        },
        "[DONE]",
    ]


def test_garbage_in_the_last_unterminated_line_is_an_error_event() -> None:
    out = decoded(run([sse(chunk("a")), b"{not json"]))
    assert out[1]["error"]["type"] == "upstream_error"
    assert out[-1] == "[DONE]"


def test_anything_after_done_is_ignored() -> None:
    out = decoded(run([b"data: [DONE]\n\n", sse(chunk("late"))]))
    assert out == ["[DONE]"]


def test_an_exception_from_the_parts_is_an_error_event_then_done() -> None:
    async def source():
        yield sse(chunk("a"))
        raise UpstreamError("The model failed while streaming: boom")

    out = decoded(run_source(source()))
    assert out[0]["choices"][0]["delta"]["content"] == "a"
    assert out[1]["error"]["message"] == "The model failed while streaming: boom"
    assert out[2] == "[DONE]"


def test_an_unexpected_bug_still_ends_the_stream_cleanly() -> None:
    async def source():
        yield sse(chunk("a"))
        raise RuntimeError("bug with secret details")

    out = decoded(run_source(source()))
    assert out[1]["error"]["type"] == "upstream_error"
    assert "secret details" not in out[1]["error"]["message"]
    assert out[-1] == "[DONE]"


def test_comments_and_other_sse_fields_are_ignored() -> None:
    stream = b": ping\n\nevent: message\nid: 1\n" + sse(chunk("a")) + b"data: [DONE]\n\n"
    out = decoded(run([stream]))
    assert len(out) == 2
    assert out[0]["choices"][0]["delta"]["content"] == "a"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(VLLM_STREAM) - 1), max_size=12))
def test_any_split_of_the_stream_yields_the_same_chunks(offsets: list[int]) -> None:
    """The re-splitter property: PayloadParts cut anywhere (inside SSE lines, JSON
    objects and UTF-8 characters, with empty parts between) give the same chunks."""
    whole = decoded(run([VLLM_STREAM], include_usage=True))
    parts: list[bytes | None] = []
    for piece in cut(VLLM_STREAM, sorted(set(offsets))):
        parts += [piece, b""]
    assert decoded(run(parts, include_usage=True)) == whole


# --- usage, closing, and the raw relay -------------------------------------------------


def test_usage_goes_to_the_sink_once_when_the_stream_ends() -> None:
    seen: list[object] = []

    async def collect() -> None:
        batches = await started(batches_of(parts_of(VLLM_STREAM), seen.append))
        async for _ in sse_body(batches, ChatEvents(include_usage=False)):
            pass

    asyncio.run(collect())
    assert seen == [{"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}]


def test_a_stream_never_iterated_still_closes_its_upstream() -> None:
    """The client left before the response started: closing the started stream must
    reach the upstream (and report no usage) without iterating it."""
    closed: list[bool] = []
    seen: list[object] = []

    async def source():
        try:
            yield sse(chunk("a"))
            yield sse(chunk("b"))
        finally:
            closed.append(True)

    async def go() -> None:
        batches = await started(batches_of(source(), seen.append))
        await batches.aclose()  # type: ignore[attr-defined]

    asyncio.run(go())
    assert closed == [True]
    assert seen == [None]


def test_an_empty_upstream_still_ends_with_done() -> None:
    assert run([]) == [DONE]


def raw(
    parts: list[bytes | None], media_type: str, writes: list[bytes] | None = None
) -> list[bytes]:
    async def source():
        for part in parts:
            yield part
        raise UpstreamError("The model failed while streaming: boom")

    async def collect() -> list[bytes]:
        out = [] if writes is None else writes
        async for w in sse_body(await started(source()), RawEvents(media_type)):
            out.append(w)
        return out

    return asyncio.run(collect())


def test_raw_sse_relay_passes_bytes_and_ends_a_failure_with_error_and_done() -> None:
    writes = raw([b"data: 1\n\n", None, b"data: 2\n\n"], "text/event-stream")
    assert writes[:3] == [b"data: 1\n\n", KEEPALIVE, b"data: 2\n\n"]
    assert json.loads(writes[3][len(b"data: ") :])["error"]["code"] == "bad_upstream_response"
    assert writes[4:] == [DONE]


def test_raw_non_sse_relay_has_no_keepalives_and_a_failure_cuts_the_body() -> None:
    writes: list[bytes] = []
    with pytest.raises(StreamAborted, match="boom"):
        raw([b"{", None, b"}"], "application/jsonlines", writes)
    # What came before the failure went out; no keep-alive, and nothing after it.
    assert writes == [b"{", b"}"]


@pytest.mark.parametrize(
    ("line", "param"),
    [
        # TGI's streamed validation error
        (b'{"error": {"message": "Input validation error: top_p", "http_status_code": 422}}',
         None),
        # vLLM's error event (ErrorInfo), and its older top-level ErrorResponse
        (b'{"error": {"message": "top_p out of range", "type": "BadRequestError", '
         b'"param": "top_p", "code": 400}}', "top_p"),
        (b'{"object": "error", "message": "top_p out of range", "code": 400}', None),
    ],
)  # fmt: skip
def test_an_engine_error_with_a_4xx_status_is_the_clients_fault(
    line: bytes, param: str | None
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        asyncio.run(fold(batches_of(parts_of(b"data: " + line + b"\n\n"))))
    assert info.value.status == 400
    assert "top_p" in info.value.message
    assert info.value.param == param
