"""Raw pass-through request: `{"model", "input", "stream"}`; `input` is sent to the
endpoint as the body (JSON, or the string itself with a non-JSON `content_type`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, StrictBool

from .base import PermissiveModel

_HEADER = r"^[\x20-\x7E]*$"


class InvocationsRequest(PermissiveModel):
    model: str = Field(min_length=1, max_length=256)
    input: Any
    stream: StrictBool = False
    # SageMaker's own limits for these headers: printable ASCII, at most 1024.
    content_type: str = Field(default="application/json", max_length=1024, pattern=_HEADER)
    accept: str | None = Field(default=None, max_length=1024, pattern=_HEADER)
    custom_attributes: str | None = Field(default=None, max_length=1024, pattern=_HEADER)
