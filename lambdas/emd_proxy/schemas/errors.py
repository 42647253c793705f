"""The error body of every non-2xx answer, as in
https://platform.openai.com/docs/guides/error-codes (DESIGN.md's error table lists the
statuses, types and codes). Anthropic's Messages API has its own shape."""

from __future__ import annotations

from .base import AnswerModel


class ErrorInfo(AnswerModel):
    message: str
    type: str
    # The field at fault as a dotted path (`messages.0.content`), or null.
    param: str | None
    code: str | None


class ErrorResponse(AnswerModel):
    error: ErrorInfo
