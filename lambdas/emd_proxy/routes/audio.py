"""POST /v1/audio/transcriptions and /v1/audio/translations: the multipart form exactly
as the OpenAI SDK sends it; the engine adapter decides what reaches the container.

`stream: true` on a transcription answers with OpenAI's server-sent events
(openai-python types/audio/transcription_text_{delta,done}_event.py):
`transcript.text.delta` events, then one `transcript.text.done` with the whole text,
then `data: [DONE]` as every stream of this gateway ends. The engines here answer
whole, so the container is called first (a failure keeps its real status) and its
answer is sent as one delta per segment (WhisperX's verbose_json segments) or one delta
with the text; the deltas join to exactly the done event's text, which is the text the
same request without `stream` answers. As OpenAI's streaming models, only the json and
text formats stream; srt, vtt and verbose_json with `stream: true` are a 400. The done
event has no `usage`: OpenAI's is a token count, which no engine here reports.

Translations (to English) need an engine that can be asked to translate and a model
deployed for it (registry feature `translate`): English-only Whisper checkpoints
(`*.en`) and the Hugging Face toolkit cannot; on the WhisperX DLC the task is fixed
when the container starts (WHISPERX_TASK), so an endpoint deployed to translate
translates every request and answers only this route."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic_core import from_json, to_json
from starlette.datastructures import FormData, UploadFile

from ..audio_formats import SUPPORTED, sniff
from ..engines import adapter
from ..engines.adapters import AudioFile, Transcript, TranscriptionAdapter
from ..errors import InvalidRequestError, RequestTooLargeError, UpstreamError
from ..jsonio import StrictJsonRoute
from ..openapi import BEARER_AUTH, ERROR_RESPONSES, event_stream
from ..registry import RegistryEntry
from ..schemas.audio import (
    Transcription,
    TranscriptionVerbose,
    TranscriptStreamEvent,
    Translation,
    TranslationVerbose,
)
from ..state import principal, services

router = APIRouter(route_class=StrictJsonRoute, responses=ERROR_RESPONSES)

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
# OpenAI streams transcripts only for these (its streaming models answer json or text).
STREAM_FORMATS = ("json", "text")
# Form fields the gateway reads itself and never forwards.
_OWN_FIELDS = frozenset({"file", "model", "stream"})
# What pydantic (and so FastAPI's Form(bool)) reads as a boolean; the SDK sends "true".
_TRUE = frozenset({"1", "true", "on", "yes", "t", "y"})
_FALSE = frozenset({"0", "false", "off", "no", "f", "n"})


def _form_schema(*, translation: bool) -> dict[str, Any]:
    """The form, parsed by hand (FastAPI's Form() would answer 422 and read every
    field), declared for clients and fuzzers reading /openapi.json."""
    properties: dict[str, Any] = {
        "file": {"type": "string", "format": "binary"},
        "model": {"type": "string"},
        "prompt": {"type": "string"},
        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS)},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
    }
    if not translation:
        properties |= {
            "language": {"type": "string"},
            "stream": {"type": "boolean"},
            "timestamp_granularities[]": {
                "type": "array",
                "items": {"type": "string", "enum": ["word", "segment"]},
            },
        }
    schema = {"type": "object", "required": ["file", "model"], "properties": properties}
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }


def _answers(json_models: Any, *, stream: bool) -> dict[int | str, dict[str, Any]]:
    content: dict[str, Any] = {"text/plain": {"schema": {"type": "string"}}}
    description = "`json` and `verbose_json` answer JSON; `text`, `srt` and `vtt` plain text"
    if stream:
        content |= event_stream(TranscriptStreamEvent)
        description += "; `stream: true` answers server-sent transcript events"
    return {200: {"model": json_models, "description": description, "content": content}}


@dataclass(frozen=True)
class AudioRequest:
    entry: RegistryEntry
    engine: TranscriptionAdapter
    response_format: str
    form: FormData

    def fields(self, response_format: str | None = None) -> list[tuple[str, str]]:
        """The form fields that go upstream. `model` is our public id; containers check
        it against their own served name (vLLM, the WhisperX DLC) and refuse ours, so it
        never goes; nor does `stream` (the gateway streams, not the container)."""
        fields = [
            (k, v)
            for k, v in self.form.multi_items()
            if k not in _OWN_FIELDS and isinstance(v, str)
        ]
        if response_format is None:
            return fields
        fields = [
            (k, v) for k, v in fields if k not in ("response_format", "timestamp_granularities[]")
        ]
        return [*fields, ("response_format", response_format)]


async def _read(request: Request, form: FormData) -> AudioFile:
    upload = form.get("file")
    assert isinstance(upload, UploadFile)
    limit = services(request).settings.max_audio_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise RequestTooLargeError(
            f"The audio file is larger than {limit} bytes ({limit / (1024 * 1024):g} MiB). "
            "Split longer audio into shorter files, or compress it (16 kHz mono opus or mp3).",
            param="file",
        )
    if not data:
        raise InvalidRequestError("The audio file is empty.", param="file")
    if sniff(data) is None:
        raise InvalidRequestError(
            "The file is not audio in a format the model reads (its first bytes match "
            f"none of: {SUPPORTED}). Send one of those.",
            param="file",
        )
    return AudioFile(
        data, upload.filename or "audio", upload.content_type or "application/octet-stream"
    )


async def _audio_request(request: Request) -> AudioRequest:
    svc = services(request)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequestError(
            "Send the audio as multipart/form-data with a `file` field, as the OpenAI SDK does."
        )
    try:
        form = await request.form(max_files=1, max_fields=64)
    except Exception as exc:
        raise InvalidRequestError("The multipart form could not be parsed.") from exc
    if not isinstance(form.get("file"), UploadFile):
        raise InvalidRequestError("The `file` field with the audio is required.", param="file")
    model = form.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("The `model` field is required.", param="model")
    entry = svc.registry.resolve(model, "audio", principal(request).models)
    engine = adapter(entry, "audio")
    response_format = str(form.get("response_format") or "json")
    if response_format not in engine.response_formats:
        supported = ", ".join(f for f in RESPONSE_FORMATS if f in engine.response_formats)
        note = (
            " (speaker labels, as OpenAI's gpt-4o-transcribe-diarize gives, are not available here)"
            if response_format == "diarized_json"
            else ""
        )
        raise InvalidRequestError(
            f"response_format `{response_format}` is not supported by the model "
            f"`{entry.id}`{note}; it supports {supported}.",
            param="response_format",
            code="unsupported_value",
        )
    return AudioRequest(entry, engine, response_format, form)


def _flag(form: FormData, name: str) -> bool:
    value = form.get(name)
    if value is None or value == "":
        return False
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidRequestError(f"`{name}` must be true or false.", param=name)


@router.post(
    "/v1/audio/transcriptions",
    response_model=None,
    responses=_answers(Transcription | TranscriptionVerbose, stream=True),
    openapi_extra={**_form_schema(translation=False), **BEARER_AUTH},
)
async def transcribe(request: Request) -> Response:
    svc = services(request)
    req = await _audio_request(request)
    stream = _flag(req.form, "stream")
    if _translates_only(req):
        raise InvalidRequestError(
            f"The model `{req.entry.id}` is deployed to translate (its container's task is "
            "fixed at launch); send the audio to /v1/audio/translations.",
            param="model",
        )
    if stream and req.response_format not in STREAM_FORMATS:
        raise InvalidRequestError(
            f"response_format `{req.response_format}` cannot be streamed: transcripts stream "
            "as json or text events. Send it without `stream` for srt, vtt or verbose_json.",
            param="response_format",
            code="unsupported_value",
        )
    audio = await _read(request, req.form)
    if stream:
        fmt = req.engine.stream_format
        call = req.engine.build(req.entry, audio, req.fields(fmt))
        answer = await svc.invoke(req.entry, call, request)
        transcript = req.engine.parse(answer.body, answer.content_type, fmt)
        return Response(
            _transcript_events(transcript, fmt),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    call = req.engine.build(req.entry, audio, req.fields())
    answer = await svc.invoke(req.entry, call, request)
    transcript = req.engine.parse(answer.body, answer.content_type, req.response_format)
    return Response(transcript.body, media_type=transcript.content_type)


@router.post(
    "/v1/audio/translations",
    response_model=None,
    responses=_answers(Translation | TranslationVerbose, stream=False),
    openapi_extra={**_form_schema(translation=True), **BEARER_AUTH},
)
async def translate(request: Request) -> Response:
    svc = services(request)
    req = await _audio_request(request)
    if _flag(req.form, "stream"):
        raise InvalidRequestError(
            "Translations do not stream (nor do OpenAI's); send the request without `stream`.",
            param="stream",
        )
    refusal = _translation_refusal(req.entry, req.engine)
    if refusal:
        raise InvalidRequestError(
            f"The model `{req.entry.id}` cannot translate: {refusal}.", param="model"
        )
    audio = await _read(request, req.form)
    call = req.engine.build_translation(req.entry, audio, req.fields())
    answer = await svc.invoke(req.entry, call, request)
    transcript = req.engine.parse(answer.body, answer.content_type, req.response_format)
    if req.response_format == "verbose_json":
        transcript = _as_translation(transcript)
    return Response(transcript.body, media_type=transcript.content_type)


def _wants_translation(entry: RegistryEntry) -> bool:
    extra = entry.features.model_extra or {}
    return bool(extra.get("translate"))


def _translates_only(req: AudioRequest) -> bool:
    """A WhisperX endpoint deployed to translate (WHISPERX_TASK=translate) translates
    whatever it is sent: its transcriptions would be English, silently."""
    return req.entry.engine == "whisperx" and _wants_translation(req.entry)


def _translation_refusal(entry: RegistryEntry, engine: TranscriptionAdapter) -> str | None:
    if entry.model.lower().endswith(".en"):
        return (
            "it is an English-only Whisper checkpoint (`.en`), which only transcribes "
            "English; translate with a multilingual Whisper model deployed for it"
        )
    if engine.translation_refusal:
        return f"it runs on {entry.engine}, and {engine.translation_refusal}"
    if not _wants_translation(entry):
        return (
            "it is not deployed to translate (registry feature `translate`; on WhisperX "
            "the endpoint's WHISPERX_TASK=translate)"
        )
    return None


def _as_translation(transcript: Transcript) -> Transcript:
    """OpenAI's translation verbose_json has no `task`; an engine's says "transcribe"
    (WhisperX's launch task aside), which would be wrong here."""
    try:
        body = from_json(transcript.body)
    except ValueError:
        return transcript
    if isinstance(body, dict) and "task" in body:
        body["task"] = "translate"
        return Transcript(to_json(body), "application/json")
    return transcript


def _deltas(text: str, pieces: list[str]) -> list[str]:
    """The text cut at the pieces (segment texts, in order), so that the deltas join to
    exactly `text`: what lies between two pieces (the space WhisperX joins them with)
    goes with the later one, and anything not found goes in the last delta."""
    deltas: list[str] = []
    cursor = 0
    for raw in pieces:
        piece = raw.strip()
        if not piece:
            continue
        found = text.find(piece, cursor)
        if found < 0:
            break
        deltas.append(text[cursor : found + len(piece)])
        cursor = found + len(piece)
    if cursor < len(text):
        if deltas:
            deltas[-1] += text[cursor:]
        else:
            deltas.append(text[cursor:])
    return deltas


def _transcript_events(transcript: Transcript, fmt: str) -> bytes:
    try:
        body = from_json(transcript.body)
        text = str(body["text"])
        segments = body.get("segments") if fmt == "verbose_json" else None
        pieces = [str(s.get("text") or "") for s in segments] if segments else [text]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UpstreamError("The model returned an unexpected transcription.") from exc
    events = [{"type": "transcript.text.delta", "delta": d} for d in _deltas(text, pieces)]
    events.append({"type": "transcript.text.done", "text": text})
    out = bytearray()
    for event in events:
        out += b"data: " + to_json(event) + b"\n\n"
    out += b"data: [DONE]\n\n"
    return bytes(out)
