"""A file that is not audio, uploaded for transcription: a 400 with a plain message
(not the container's JSON error body inside a string)."""

from __future__ import annotations

import io

import openai
import pytest

from .conftest import WHISPER


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.txt", b"this is not audio at all\n" * 20),
        ("fake.wav", b"RIFF\x00\x00\x00\x00WAVEjunk"),
    ],
)
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
