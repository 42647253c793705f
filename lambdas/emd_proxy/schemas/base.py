"""The bases of the request and answer schemas."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

from ..validation import bound_error
from .limits import INT64_MAX, INT64_MIN, oversized_extra


class PermissiveModel(BaseModel):
    """Unknown fields are kept (and passed to engines that understand them); NaN and
    infinities are refused, as no engine takes them."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class RequestModel(PermissiveModel):
    """A request body: its engine extras go to the engine as they are, so an integer
    no engine can hold is a 400 naming the field (its known fields have their own
    bounds, schemas/limits.py)."""

    @model_validator(mode="after")
    def _extras_fit(self) -> RequestModel:
        name = oversized_extra(self.__pydantic_extra__)
        if name is not None:
            value = (self.__pydantic_extra__ or {})[name]
            op, limit = ("<=", INT64_MAX) if value > 0 else (">=", INT64_MIN)
            raise bound_error(name, value, op, limit)
        return self


class AnswerModel(BaseModel):
    """An answer's documented shape. Routes send their dicts as they are; these feed
    /openapi.json and the tests only, so pydantic builds them on first use (the
    document, a test) and never on a Lambda's cold start."""

    model_config = ConfigDict(defer_build=True)
