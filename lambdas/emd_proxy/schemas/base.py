"""The bases of the request and answer schemas."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PermissiveModel(BaseModel):
    """Unknown fields are kept (and passed to engines that understand them); NaN and
    infinities are refused, as no engine takes them."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class AnswerModel(BaseModel):
    """An answer's documented shape. Routes send their dicts as they are; these feed
    /openapi.json and the tests only, so pydantic builds them on first use (the
    document, a test) and never on a Lambda's cold start."""

    model_config = ConfigDict(defer_build=True)
