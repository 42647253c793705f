"""POST /v1/audio/transcriptions: the multipart form exactly as the OpenAI SDK sends
it; the engine adapter decides what reaches the container."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from ..engines import adapter
from ..engines.adapters import AudioFile
from ..errors import InvalidRequestError, RequestTooLargeError
from ..jsonio import StrictJsonRoute
from ..openapi import BEARER_AUTH, ERROR_RESPONSES
from ..schemas.audio import Transcription, TranscriptionVerbose
from ..state import principal, services

router = APIRouter(route_class=StrictJsonRoute, responses=ERROR_RESPONSES)

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


# The form is parsed by hand (FastAPI's Form() would answer 422 and read every field);
# this declares it for clients and fuzzers reading /openapi.json.
_FORM_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "model"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "model": {"type": "string"},
                        "language": {"type": "string"},
                        "prompt": {"type": "string"},
                        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS)},
                        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
                        "timestamp_granularities[]": {
                            "type": "array",
                            "items": {"type": "string", "enum": ["word", "segment"]},
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/v1/audio/transcriptions",
    response_model=None,
    responses={
        200: {
            "model": Transcription | TranscriptionVerbose,
            "description": "`json` and `verbose_json` answer JSON; `text`, `srt` and `vtt` "
            "plain text",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
    openapi_extra={**_FORM_SCHEMA, **BEARER_AUTH},
)
async def transcribe(request: Request) -> Response:
    svc = services(request)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequestError(
            "Send the audio as multipart/form-data with a `file` field, as the OpenAI SDK does."
        )
    try:
        form = await request.form(max_files=1, max_fields=64)
    except Exception as exc:
        raise InvalidRequestError("The multipart form could not be parsed.") from exc
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidRequestError("The `file` field with the audio is required.", param="file")
    model = form.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("The `model` field is required.", param="model")
    entry = svc.registry.resolve(model, "audio", principal(request).models)
    engine = adapter(entry, "audio")
    response_format = str(form.get("response_format") or "json")
    if response_format not in RESPONSE_FORMATS:
        raise InvalidRequestError(
            f"response_format must be one of {', '.join(RESPONSE_FORMATS)}.",
            param="response_format",
        )
    if response_format not in engine.response_formats:
        raise InvalidRequestError(
            f"The model `{entry.id}` cannot produce {response_format}; it supports "
            f"{', '.join(sorted(engine.response_formats))}.",
            param="response_format",
        )
    data = await upload.read(svc.settings.max_audio_bytes + 1)
    if len(data) > svc.settings.max_audio_bytes:
        raise RequestTooLargeError(
            f"The audio file is larger than {svc.settings.max_audio_bytes} bytes.",
            param="file",
        )
    if not data:
        raise InvalidRequestError("The audio file is empty.", param="file")
    audio = AudioFile(
        data, upload.filename or "audio", upload.content_type or "application/octet-stream"
    )
    # `model` is our public id; containers check it against their own served name
    # (vLLM, the WhisperX DLC) and refuse ours, so it never goes upstream.
    fields = [
        (k, v) for k, v in form.multi_items() if k not in ("file", "model") and isinstance(v, str)
    ]
    call = engine.build(entry, audio, fields)
    answer = await svc.invoke(entry.endpoint, call)
    transcript = engine.parse(answer.body, answer.content_type, response_format)
    return Response(transcript.body, media_type=transcript.content_type)
