"""Re-encoding a transcription upload for the container (urllib3 ships with botocore,
so this adds nothing to the Lambda bundle)."""

from __future__ import annotations

from urllib3.filepost import encode_multipart_formdata

from ..sagemaker_client import UpstreamCall
from .adapters import AudioFile


def multipart_call(
    audio: AudioFile, fields: list[tuple[str, str]], custom_attributes: str | None = None
) -> UpstreamCall:
    parts: list[tuple[str, str | tuple[str, bytes, str]]] = [
        ("file", (audio.filename, audio.data, audio.content_type))
    ]
    parts += fields
    body, content_type = encode_multipart_formdata(parts)
    return UpstreamCall(body, content_type, custom_attributes=custom_attributes)
