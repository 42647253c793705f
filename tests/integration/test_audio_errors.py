"""A file that is not audio, uploaded for transcription: a 400 with a plain message
(not the container's JSON error body inside a string). A file whose first bytes are
no audio format is refused before the model is called (a real WhisperX answers it with
a bare 500); one that only looks like audio gets the container's own reason."""

from __future__ import annotations

import io

import openai
import pytest

from emd.local.gateway import LocalGateway

from .conftest import WHISPER


def test_a_file_that_is_no_audio_format_is_refused_before_the_model(
    gateway: LocalGateway, client: openai.OpenAI
) -> None:
    emulator = gateway.stack.emulator
    assert emulator is not None
    before = emulator.stats.invocations
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(
            model=WHISPER, file=("notes.txt", io.BytesIO(b"this is not audio at all\n" * 20))
        )
    assert info.value.param == "file"
    assert "not audio in a format the model reads" in info.value.message
    assert "wav" in info.value.message
    assert emulator.stats.invocations == before


@pytest.mark.parametrize(("name", "content"), [("fake.wav", b"RIFF\x00\x00\x00\x00WAVEjunk")])
def test_a_file_that_is_not_audio_is_a_plain_400(
    client: openai.OpenAI, name: str, content: bytes
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(model=WHISPER, file=(name, io.BytesIO(content)))
    body = info.value.body
    assert isinstance(body, dict)
    message = body["message"]
    assert body["type"] == "invalid_request_error"
    assert message.startswith("Could not decode the audio file"), message
    assert "{" not in message and "detail" not in message, message  # no JSON inside
