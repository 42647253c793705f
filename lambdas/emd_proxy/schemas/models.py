"""Model list and model card, as in https://platform.openai.com/docs/api-reference/models,
plus what the registry knows about the model under `emd`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from ..families import Family
from ..registry import Engine
from .base import AnswerModel


class ModelFeatures(AnswerModel):
    # The catalog may add features of its own (e.g. `token_ids`); they are shown too.
    model_config = ConfigDict(extra="allow")

    tools: bool
    vision: bool
    reasoning: bool


class ModelDetails(AnswerModel):
    model: str
    tag: str
    families: list[Family]
    apis: list[str] = Field(
        description="The POST routes that answer this model, e.g. /v1/chat/completions, "
        "/v1/messages, /v1/completions and /v1/responses for a chat model."
    )
    engine: Engine
    features: ModelFeatures
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Free-form facts; absent when there are none."
    )


class Model(AnswerModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    # Our extension.
    emd: ModelDetails


class ModelList(AnswerModel):
    object: Literal["list"]
    data: list[Model]
