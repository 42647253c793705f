from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emd_proxy.transcripts import (
    openai_segment,
    srt_timestamp,
    to_srt,
    to_vtt,
    transcript_text,
    verbose_json,
    vtt_timestamp,
)

SEGMENTS = [
    {"start": 0.0, "end": 1.5, "text": " Hello world."},
    {"start": 1.5, "end": 3661.5, "text": " This is a test."},
]


@pytest.mark.parametrize(
    ("seconds", "srt"),
    [
        (0, "00:00:00,000"),
        (3661.5, "01:01:01,500"),
        (1.5, "00:00:01,500"),
        (0.29, "00:00:00,290"),  # 0.29 * 1000 == 289.99999999999997: rounded, not cut
        (1.9996, "00:00:02,000"),  # rounding carries into the seconds...
        (59.9999, "00:01:00,000"),  # ...and the minutes
        (0.0004, "00:00:00,000"),
        (360000.25, "100:00:00,250"),  # hours grow past 99
        (-1.0, "00:00:00,000"),
        (math.nan, "00:00:00,000"),
    ],
)
def test_srt_timestamps(seconds: float, srt: str) -> None:
    assert srt_timestamp(seconds) == srt
    assert vtt_timestamp(seconds) == srt.replace(",", ".")


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_timestamps_read_back_to_the_rounded_milliseconds(seconds: float) -> None:
    h, m, s, ms = map(
        int, re.fullmatch(r"(\d+):(\d\d):(\d\d),(\d\d\d)", srt_timestamp(seconds)).groups()
    )
    assert m < 60 and s < 60
    assert ((h * 60 + m) * 60 + s) * 1000 + ms == round(seconds * 1000)


def test_srt_numbers_cues_and_separates_them_with_blank_lines() -> None:
    assert to_srt(SEGMENTS) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello world.\n"
        "\n"
        "2\n00:00:01,500 --> 01:01:01,500\nThis is a test.\n"
    )


def test_vtt_has_the_header_and_dotted_timestamps() -> None:
    assert to_vtt(SEGMENTS) == (
        "WEBVTT\n"
        "\n"
        "00:00:00.000 --> 00:00:01.500\nHello world.\n"
        "\n"
        "00:00:01.500 --> 01:01:01.500\nThis is a test.\n"
    )


def test_no_segments() -> None:
    assert to_srt([]) == ""
    assert to_vtt([]) == "WEBVTT\n"
    assert transcript_text([]) == ""
    body = verbose_json(language="en", duration=0.0, segments=[])
    assert body["segments"] == [] and body["text"] == ""


def test_silent_segments_are_skipped_and_numbering_stays_consecutive() -> None:
    segments = [
        {"start": 0.0, "end": 1.0, "text": "  "},
        {"start": 1.0, "end": 2.0, "text": "one"},
        {"start": 2.0, "end": 3.0, "text": ""},
        {"start": 3.0, "end": 4.0, "text": "two"},
    ]
    srt = to_srt(segments)
    assert [line for line in srt.splitlines() if line.isdigit()] == ["1", "2"]
    assert "00:00:03,000 --> 00:00:04,000\ntwo" in srt
    assert to_vtt(segments).count("-->") == 2


def test_cue_text_never_holds_a_blank_line_and_end_never_precedes_start() -> None:
    srt = to_srt([{"start": 5.0, "end": 4.0, "text": "first line\n\n  second line  "}])
    assert srt == "1\n00:00:05,000 --> 00:00:05,000\nfirst line\nsecond line\n"


def test_vtt_escapes_markup_characters() -> None:
    vtt = to_vtt([{"start": 0, "end": 1, "text": "a < b & c --> d"}])
    assert "a &lt; b &amp; c --&gt; d" in vtt
    assert vtt.count("-->") == 1


def test_transcript_text_joins_stripped_segments() -> None:
    assert transcript_text(SEGMENTS) == "Hello world. This is a test."


def test_verbose_json_in_openais_shape() -> None:
    words = [
        {"word": " Hello", "start": 0.0, "end": 0.62},
        {"word": " world.", "start": 0.62, "end": 1.5},
    ]
    full = [
        {
            **SEGMENTS[0],
            "seek": 0,
            "tokens": [50363, 18435],
            "temperature": 0.0,
            "avg_logprob": -0.55,
            "compression_ratio": 0.94,
            "no_speech_prob": 0.1,
        }
    ]
    body = verbose_json(language="en", duration=3.3831875, segments=full, words=words)
    assert list(body) == ["task", "language", "duration", "text", "segments", "words"]
    assert body["task"] == "transcribe" and body["language"] == "en"
    assert body["duration"] == 3.383
    assert body["text"] == "Hello world."
    assert body["segments"] == [
        {
            "id": 0,
            "seek": 0,
            "start": 0.0,
            "end": 1.5,
            "text": " Hello world.",
            "tokens": [50363, 18435],
            "temperature": 0.0,
            "avg_logprob": -0.55,
            "compression_ratio": 0.94,
            "no_speech_prob": 0.1,
        }
    ]
    assert body["words"] == [
        {"word": "Hello", "start": 0.0, "end": 0.62},
        {"word": "world.", "start": 0.62, "end": 1.5},
    ]


def test_verbose_json_without_words_and_with_bare_segments() -> None:
    body = verbose_json(language="en", duration=2, segments=SEGMENTS, text="given text")
    assert "words" not in body
    assert body["text"] == "given text"
    # Engines that answer with start/end/text only still give every OpenAI field.
    assert [s["id"] for s in body["segments"]] == [0, 1]
    second = body["segments"][1]
    assert second["seek"] == 150 and second["tokens"] == [] and second["no_speech_prob"] == 0.0


def test_segment_times_are_plain_rounded_floats() -> None:
    segment = openai_segment(3, {"start": 0.23999999463558197, "end": 1.0000004, "text": "x"})
    assert segment["start"] == 0.24 and segment["end"] == 1.0
    assert segment["id"] == 3
