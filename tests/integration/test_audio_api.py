"""Streamed transcriptions, translations, diarized_json and the upload limit, end to end
with the real openai SDK -> proxy -> boto3 -> emulator -> faster-whisper (tiny.en)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.audio import TranscriptionTextDeltaEvent, TranscriptionTextDoneEvent

from emd.local.gateway import LocalGateway

from .conftest import KEY, TRANSLATOR, WHISPER

# The SDK marks translations.create deprecated (whisper-1, its only OpenAI model, is
# announced for shutdown); the route stays for Whisper models served here.
pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")

SPEECH = Path(__file__).parent.parent / "data" / "speech.wav"
FORMATS = "json, text, srt, vtt, verbose_json"


def heard(text: str) -> bool:
    """tiny.en mishears a word or two of the clip; most of it must come through."""
    spoken = {"hello", "world", "test", "gateway"}
    return len(spoken & set(re.findall(r"[a-z]+", text.lower()))) >= 3


@pytest.fixture(scope="module")
def transcript(gateway: LocalGateway) -> str:
    """The clip transcribed without streaming (beam search at temperature 0 is
    deterministic, so the streamed transcript must be this text)."""
    client = openai.OpenAI(base_url=gateway.base_url, api_key=KEY, max_retries=0)
    return client.audio.transcriptions.create(
        model=WHISPER, file=("speech.wav", SPEECH.read_bytes())
    ).text


# --- stream: true ----------------------------------------------------------------------
@pytest.mark.parametrize("response_format", ["json", "text"])
def test_streamed_transcription_is_delta_events_then_done(
    client: openai.OpenAI, transcript: str, response_format: str
) -> None:
    stream = client.audio.transcriptions.create(
        model=WHISPER,
        file=("speech.wav", SPEECH.read_bytes()),
        stream=True,
        response_format=response_format,  # type: ignore[arg-type]
    )
    events = list(stream)
    assert len(events) >= 2
    *deltas, done = events
    assert all(isinstance(e, TranscriptionTextDeltaEvent) for e in deltas)
    assert all(e.type == "transcript.text.delta" and e.delta for e in deltas)
    assert isinstance(done, TranscriptionTextDoneEvent)
    assert done.type == "transcript.text.done"
    assert done.text == transcript
    assert "".join(e.delta for e in deltas) == done.text
    assert heard(done.text)


def test_async_stream(gateway: LocalGateway, transcript: str) -> None:
    async def scenario() -> list[object]:
        async with openai.AsyncOpenAI(
            base_url=gateway.base_url, api_key=KEY, max_retries=0
        ) as client:
            stream = await client.audio.transcriptions.create(
                model=WHISPER, file=("speech.wav", SPEECH.read_bytes()), stream=True
            )
            return [event async for event in stream]

    events = asyncio.run(scenario())
    assert isinstance(events[-1], TranscriptionTextDoneEvent)
    assert events[-1].text == transcript


def test_stream_wire_format(http: httpx.Client, transcript: str) -> None:
    """Server-sent `data:` events as the SDK's decoder reads them, ending with [DONE];
    the form field is the string "true", as the SDK sends it."""
    response = http.post(
        "/audio/transcriptions",
        data={"model": WHISPER, "stream": "true"},
        files={"file": ("speech.wav", SPEECH.read_bytes(), "audio/wav")},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = response.text.split("\n\n")
    assert blocks[-2:] == ["data: [DONE]", ""]
    assert all(b.startswith('data: {"type":"transcript.text.') for b in blocks[:-2])
    assert f'"text":{httpx.Response(200, json=transcript).text}' in blocks[-3]


@pytest.mark.parametrize("response_format", ["srt", "vtt", "verbose_json"])
def test_stream_of_a_whole_file_format_is_400(client: openai.OpenAI, response_format: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(
            model=WHISPER,
            file=("speech.wav", SPEECH.read_bytes()),
            stream=True,
            response_format=response_format,  # type: ignore[arg-type]
        )
    assert info.value.param == "response_format"
    assert response_format in info.value.message and "json or text" in info.value.message


def test_stream_false_answers_json(client: openai.OpenAI, transcript: str) -> None:
    result = client.audio.transcriptions.create(
        model=WHISPER, file=("speech.wav", SPEECH.read_bytes()), stream=False
    )
    assert result.text == transcript


# --- translations ----------------------------------------------------------------------
def test_english_only_model_cannot_translate(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.translations.create(model=WHISPER, file=("speech.wav", SPEECH.read_bytes()))
    assert info.value.param == "model"
    assert WHISPER in info.value.message
    assert "English-only" in info.value.message


def test_translation_on_a_model_deployed_to_translate(client: openai.OpenAI) -> None:
    result = client.audio.translations.create(
        model=TRANSLATOR, file=("speech.wav", SPEECH.read_bytes())
    )
    assert heard(result.text)
    text = client.audio.translations.create(
        model=TRANSLATOR, file=("speech.wav", SPEECH.read_bytes()), response_format="text"
    )
    assert isinstance(text, str) and heard(text)
    verbose = client.audio.translations.create(
        model=TRANSLATOR, file=("speech.wav", SPEECH.read_bytes()), response_format="verbose_json"
    )
    assert verbose.segments and heard(verbose.text)
    assert verbose.model_extra.get("task") == "translate"  # type: ignore[union-attr]


def test_a_translating_whisperx_endpoint_does_not_transcribe(client: openai.OpenAI) -> None:
    """Its task is fixed at launch: a transcription would come back translated."""
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(
            model=TRANSLATOR, file=("speech.wav", SPEECH.read_bytes())
        )
    assert "/v1/audio/translations" in info.value.message


def test_translation_does_not_stream(http: httpx.Client) -> None:
    response = http.post(
        "/audio/translations",
        data={"model": TRANSLATOR, "stream": "true"},
        files={"file": ("speech.wav", SPEECH.read_bytes(), "audio/wav")},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stream"


# --- response formats and limits -------------------------------------------------------
@pytest.mark.parametrize("route", ["transcriptions", "translations"])
def test_diarized_json_is_400_naming_the_supported_formats(
    client: openai.OpenAI, route: str
) -> None:
    model = WHISPER if route == "transcriptions" else TRANSLATOR
    create = getattr(client.audio, route).create
    with pytest.raises(openai.BadRequestError) as info:
        create(
            model=model, file=("speech.wav", SPEECH.read_bytes()), response_format="diarized_json"
        )
    assert info.value.param == "response_format"
    assert info.value.code == "unsupported_value"
    assert FORMATS in info.value.message and model in info.value.message


@pytest.mark.parametrize("route", ["transcriptions", "translations"])
def test_five_mib_upload_is_413(client: openai.OpenAI, route: str) -> None:
    model = WHISPER if route == "transcriptions" else TRANSLATOR
    create = getattr(client.audio, route).create
    with pytest.raises(openai.APIStatusError) as info:
        create(model=model, file=("big.wav", b"\0" * (5 * 1024 * 1024)))
    assert info.value.status_code == 413
    assert info.value.code == "request_too_large"
