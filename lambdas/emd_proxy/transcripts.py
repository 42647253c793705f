"""Transcript renderings shared by the proxy and the local WhisperX container: SRT and
WebVTT subtitles and OpenAI's `verbose_json`, built from timed segments.

Pure functions on plain mappings (stdlib only): the proxy needs them for engines that
answer with segments alone, and `emd` imports them for its container (imports go one
way, `emd` -> `emd_proxy`).

A segment is a mapping with `start` and `end` in seconds and `text`; OpenAI's other
segment fields (`id`, `seek`, `tokens`, `temperature`, `avg_logprob`,
`compression_ratio`, `no_speech_prob`) are copied when present. Words are mappings
with `word`, `start` and `end`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# verbose_json segment fields after the timing ones, with the value used when an
# engine does not report them (OpenAI's SDK types declare every field).
_SEGMENT_DEFAULTS: dict[str, Any] = {
    "tokens": [],
    "temperature": 0.0,
    "avg_logprob": 0.0,
    "compression_ratio": 0.0,
    "no_speech_prob": 0.0,
}


def _milliseconds(seconds: float) -> int:
    """Whole milliseconds, rounded to nearest (not truncated: 0.29 s is 290 ms even
    though 0.29 * 1000 is 289.99...). Negative and non-finite times become 0."""
    if not math.isfinite(seconds) or seconds <= 0:
        return 0
    return round(seconds * 1000)


def timestamp(seconds: float, decimal_separator: str = ",") -> str:
    """`HH:MM:SS,mmm` (SRT) or, with ".", `HH:MM:SS.mmm` (WebVTT). Hours keep growing
    past 99 rather than wrapping."""
    total_ms = _milliseconds(seconds)
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_separator}{ms:03d}"


def srt_timestamp(seconds: float) -> str:
    return timestamp(seconds, ",")


def vtt_timestamp(seconds: float) -> str:
    return timestamp(seconds, ".")


def _cue_text(text: str) -> str:
    # A blank line ends a cue in both formats, so drop empty lines inside the text.
    return "\n".join(line.strip() for line in text.strip().splitlines() if line.strip())


def _cues(segments: Iterable[Mapping[str, Any]]) -> list[tuple[float, float, str]]:
    """(start, end, text) of the segments that have text; end never before start."""
    cues = []
    for segment in segments:
        text = _cue_text(str(segment.get("text") or ""))
        if not text:
            continue  # an empty cue is not valid SRT and says nothing
        start = float(segment.get("start") or 0.0)
        end = max(float(segment.get("end") or 0.0), start)
        cues.append((start, end, text))
    return cues


def to_srt(segments: Iterable[Mapping[str, Any]]) -> str:
    """Numbered SubRip cues separated by blank lines; "" when nothing was said."""
    blocks = [
        f"{number}\n{srt_timestamp(start)} --> {srt_timestamp(end)}\n{text}\n"
        for number, (start, end, text) in enumerate(_cues(segments), start=1)
    ]
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    # WebVTT cue text is markup: `&`, `<` and `>` must be escaped (this also keeps a
    # literal "-->" from reading as a timing line).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(segments: Iterable[Mapping[str, Any]]) -> str:
    """A WebVTT file: the `WEBVTT` header, then unnumbered cues."""
    blocks = [
        f"{vtt_timestamp(start)} --> {vtt_timestamp(end)}\n{_vtt_escape(text)}\n"
        for start, end, text in _cues(segments)
    ]
    return "\n".join(["WEBVTT\n", *blocks])


def transcript_text(segments: Iterable[Mapping[str, Any]]) -> str:
    """The whole transcript: segment texts stripped and joined by single spaces (what
    the WhisperX DLC does)."""
    parts = (str(segment.get("text") or "").strip() for segment in segments)
    return " ".join(part for part in parts if part)


def _seconds(value: Any) -> float:
    # Millisecond resolution is what the subtitle formats carry; it also hides float32
    # noise such as 0.23999999463558197.
    return round(float(value or 0.0), 3)


def openai_segment(index: int, segment: Mapping[str, Any]) -> dict[str, Any]:
    """One segment in OpenAI's verbose_json shape. `id` counts from 0 as OpenAI's do
    (faster-whisper counts from 1); `seek` defaults to the start in 10 ms frames."""
    start = _seconds(segment.get("start"))
    seek = segment.get("seek")
    out: dict[str, Any] = {
        "id": index,
        "seek": round(start * 100) if seek is None else int(seek),
        "start": start,
        "end": max(_seconds(segment.get("end")), start),
        "text": str(segment.get("text") or ""),
    }
    for name, default in _SEGMENT_DEFAULTS.items():
        value = segment.get(name)
        if value is None:
            out[name] = list(default) if isinstance(default, list) else default
        elif name == "tokens":
            out[name] = [int(token) for token in value]
        else:
            out[name] = float(value)
    return out


def openai_word(word: Mapping[str, Any]) -> dict[str, Any]:
    """`{"word", "start", "end"}`; Whisper's leading space is not part of the word."""
    return {
        "word": str(word.get("word") or "").strip(),
        "start": _seconds(word.get("start")),
        "end": _seconds(word.get("end")),
    }


def verbose_json(
    *,
    language: str,
    duration: float,
    segments: Sequence[Mapping[str, Any]],
    words: Iterable[Mapping[str, Any]] | None = None,
    text: str | None = None,
    task: str = "transcribe",
) -> dict[str, Any]:
    """OpenAI's verbose_json transcription. `words` is included only when given (the
    caller asked for word timestamps); `text` defaults to the joined segments."""
    body: dict[str, Any] = {
        "task": task,
        "language": language,
        "duration": _seconds(duration),
        "text": transcript_text(segments) if text is None else text,
        "segments": [openai_segment(i, segment) for i, segment in enumerate(segments)],
    }
    if words is not None:
        body["words"] = [openai_word(word) for word in words]
    return body
