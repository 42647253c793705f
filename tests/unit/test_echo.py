from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emd.local.containers.echo import echo_answer, tokens


def chat(text: str, **extra) -> dict:
    return {"messages": [{"role": "user", "content": text}], **extra}


_text = st.text(alphabet=st.sampled_from(list("ab é世🙂\n\t-.")), max_size=40)


def test_tokens_keep_leading_whitespace() -> None:
    assert tokens("Hello  big\nworld") == ["Hello", "  big", "\nworld"]
    assert tokens("  hi") == ["  hi"]
    assert tokens("") == []
    assert tokens("   ") == []


@given(_text.filter(lambda t: not t or not t[-1].isspace()))
def test_joined_tokens_equal_the_text(text) -> None:
    parts = tokens(text)
    assert "".join(parts) == text
    assert all(part.strip() for part in parts)  # one word per token
    assert len(parts) == len(text.split())


def test_echoes_the_last_user_message() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "second one"}]},
            {"role": "tool", "content": "tool output"},
        ]
    }
    words, finish, prompt_tokens = echo_answer(body)
    assert "".join(words) == "second one"
    assert finish == "stop"
    assert prompt_tokens == 2 + 1 + 1 + 2 + 2


def test_no_user_message_gives_an_empty_answer() -> None:
    assert echo_answer({"messages": [{"role": "system", "content": "x y"}]}) == ([], "stop", 2)


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_truncates_with_finish_length(field) -> None:
    words, finish, _ = echo_answer(chat("one two three four", **{field: 2}))
    assert words == ["one", " two"]
    assert finish == "length"


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    words, _, _ = echo_answer(chat("one two three", max_tokens=1, max_completion_tokens=2))
    assert len(words) == 2


def test_max_tokens_not_reached_is_stop() -> None:
    words, finish, _ = echo_answer(chat("one two", max_tokens=2))
    assert words == ["one", " two"]
    assert finish == "stop"


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        ("big", "Hello "),
        (" big", "Hello"),
        (["world", "zzz"], "Hello big "),
        ("Hello", ""),
        ("o b", "Hell"),  # starts inside a word already passed
        ("lo big w", "Hel"),  # spans three words
        (["g w", "ig"], "Hello b"),  # the earliest stop wins
        ("zzz", "Hello big world"),
        (["", "zzz"], "Hello big world"),  # an empty stop string stops nothing
    ],
)
def test_stop_cuts_before_the_stop_string(stop, expected) -> None:
    words, finish, _ = echo_answer(chat("Hello big world", stop=stop))
    assert "".join(words) == expected
    assert all(words), "no empty tokens"
    assert finish == "stop"


@given(text=_text.filter(lambda t: t and not t[-1].isspace()), data=st.data())
def test_stop_property(text, data) -> None:
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    stop = text[start:end]
    words, finish, _ = echo_answer(chat(text, stop=stop))
    assert "".join(words) == text[: text.find(stop)]
    assert all(words)
    assert finish == "stop"


def test_stop_then_max_tokens() -> None:
    words, finish, _ = echo_answer(chat("a b c d e", stop=" e", max_tokens=2))
    assert words == ["a", " b"]
    assert finish == "length"
