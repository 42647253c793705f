"""The base of every request schema."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PermissiveModel(BaseModel):
    """Unknown fields are kept (and passed to engines that understand them); NaN and
    infinities are refused, as no engine takes them."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
