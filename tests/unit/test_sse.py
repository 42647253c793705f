from __future__ import annotations

import json
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emd_proxy.sse import DONE, KEEPALIVE, STREAM_DONE, LineSplitter, event, read_line


def feed_all(pieces: list[bytes]) -> list[bytes]:
    splitter = LineSplitter()
    lines: list[bytes] = []
    for piece in pieces:
        lines += splitter.feed(piece)
    return lines + splitter.flush()


# --- LineSplitter ----------------------------------------------------------------------


def test_whole_lines_come_out_without_their_newline() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"data: 1\n\ndata: 2\n") == [b"data: 1", b"", b"data: 2"]
    assert splitter.flush() == []


def test_crlf_is_stripped() -> None:
    assert feed_all([b"data: 1\r\n\r\ndata: 2\r\n"]) == [b"data: 1", b"", b"data: 2"]


def test_crlf_split_between_pieces_is_stripped() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"data: 1\r") == []
    assert splitter.feed(b"\ndata") == [b"data: 1"]
    assert splitter.feed(b": 2\r\n") == [b"data: 2"]


def test_a_line_split_across_pieces_is_held_until_complete() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"da") == []
    assert splitter.feed(b'ta: {"a"') == []
    assert splitter.feed(b": 1}\n") == [b'data: {"a": 1}']


def test_multibyte_utf8_split_across_pieces_stays_intact() -> None:
    text = 'data: {"content": "héllo 世界 🙂"}\n'.encode()
    # Cut inside the 2-, 3- and 4-byte characters.
    cuts = [text.index("é".encode()) + 1, text.index("世".encode()) + 2, text.index(b"\xf0") + 3]
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    with pytest.raises(UnicodeDecodeError):
        pieces[0].decode()  # the cut really is inside a character
    lines = feed_all(pieces)
    assert lines == [text.rstrip(b"\n")]
    assert lines[0].decode() == 'data: {"content": "héllo 世界 🙂"}'


def test_lines_are_bytes() -> None:
    lines = feed_all([b"a\r\nb\n", b"c"])
    assert lines == [b"a", b"b", b"c"]
    assert all(type(line) is bytes for line in lines)


def test_flush_returns_the_last_unterminated_line_once() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"a": 1}\n{"b"') == [b'{"a": 1}']
    assert splitter.flush() == [b'{"b"']
    assert splitter.flush() == []


def test_flush_drops_a_blank_or_cr_only_rest() -> None:
    splitter = LineSplitter()
    splitter.feed(b"x\n \r")
    assert splitter.flush() == []


def test_flush_strips_a_trailing_cr() -> None:
    splitter = LineSplitter()
    splitter.feed(b"data: 1\r")
    assert splitter.flush() == [b"data: 1"]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
_events = st.lists(
    # Stream chunks are JSON objects (a JSON-lines parser only knows a line by its `{`).
    st.tuples(
        st.sampled_from(["sse", "sse-crlf", "jsonl", "comment"]),
        st.dictionaries(st.text(), _json_values, max_size=4),
    ),
    max_size=8,
)


def _encode(kind: str, value: object) -> bytes:
    payload = json.dumps(value, ensure_ascii=False)
    return {
        "sse": f"data: {payload}\n\n",
        "sse-crlf": f"data: {payload}\r\n\r\n",
        "jsonl": f"{payload}\n",
        "comment": ": keep-alive\n\n",
    }[kind].encode()


@given(events=_events, data=st.data())
def test_any_cutting_of_the_bytes_gives_the_same_lines(events, data) -> None:
    whole = b"".join(_encode(kind, value) for kind, value in events)
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(whole)), max_size=20)))
    bounds = [0, *cuts, len(whole)]
    pieces = [whole[a:b] for a, b in pairwise(bounds)]
    assert b"".join(pieces) == whole
    expected = feed_all([whole])
    assert feed_all(pieces) == expected
    # ...and those lines carry exactly the events' payloads, in order.
    payloads = [read_line(line) for line in expected]
    decoded = [json.loads(p) for p in payloads if p is not None]
    assert decoded == [value for kind, value in events if kind != "comment"]


@given(st.binary(max_size=200), st.lists(st.integers(min_value=0, max_value=200), max_size=10))
def test_any_cutting_of_arbitrary_bytes_gives_the_same_lines(whole, cuts) -> None:
    bounds = [0, *sorted(c for c in cuts if c <= len(whole)), len(whole)]
    pieces = [whole[a:b] for a, b in pairwise(bounds)]
    assert feed_all(pieces) == feed_all([whole])


# --- read_line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'data: {"a": 1}', b'{"a": 1}'),
        (b'data:{"a": 1}', b'{"a": 1}'),
        (b'data:   {"a": 1}  ', b'{"a": 1}'),
        (b'{"a": 1}', b'{"a": 1}'),  # LMI JSON lines: no `data:` prefix
        (b"[1, 2]", b"[1, 2]"),
        (b'  {"a": 1}\r', b'{"a": 1}'),
    ],
)
def test_read_line_returns_the_json_payload(line: bytes, expected: bytes) -> None:
    assert read_line(line) == expected


@pytest.mark.parametrize("line", [b"data: [DONE]", b"data:[DONE]", b"data: [DONE]  "])
def test_read_line_recognises_done(line: bytes) -> None:
    assert read_line(line) is STREAM_DONE


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"   ",
        b": keep-alive",
        b":",
        b"event: message",
        b"id: 7",
        b"retry: 1000",
        b"data:",
        b"data:   ",
    ],
)
def test_read_line_ignores_lines_without_payload(line: bytes) -> None:
    assert read_line(line) is None


# --- writing ---------------------------------------------------------------------------


def test_event_is_one_compact_sse_data_event() -> None:
    out = event({"a": [1, "é"], "b": None})
    assert out.startswith(b"data: ")
    assert out.endswith(b"\n\n")
    assert out.count(b"\n") == 2
    assert json.loads(out[len(b"data: ") :]) == {"a": [1, "é"], "b": None}
    assert read_line(out.rstrip(b"\n")) == out[len(b"data: ") :].rstrip(b"\n")


def test_terminator_and_keepalive_frames() -> None:
    assert DONE == b"data: [DONE]\n\n"
    assert read_line(DONE.rstrip(b"\n")) is STREAM_DONE
    assert KEEPALIVE.startswith(b":")
    assert KEEPALIVE.endswith(b"\n\n")
    assert read_line(KEEPALIVE.rstrip(b"\n")) is None
