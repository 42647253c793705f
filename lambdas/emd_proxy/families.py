"""The endpoint families, one row each: the routes a family answers, the router module
that serves them, and how long its requests may run. The app mounts routers from this
table, the settings check EMD_FAMILIES against it, the registry names a model's
families with it, and infra builds one Lambda with these API Gateway routes per row.
Adding a family: a row here, `routes/<router>.py` and its schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The families a model can serve (registry entries list them).
Family = Literal["chat", "embeddings", "rerank", "invocations", "audio"]
# The pseudo-family every process serves: /v1/models and /health (EMD_FAMILIES=models
# names the Lambda that serves only these).
MODELS = "models"
# How long a family's requests may run: `long` streams up to API Gateway's 15 minute
# limit (generation, raw invocations, transcription); `short` answers within
# SageMaker's 60 s InvokeEndpoint limit (embeddings, rerank); `instant` is local work.
TimeoutClass = Literal["instant", "short", "long"]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway's form: a greedy `{id+}` takes the rest of the path


@dataclass(frozen=True)
class FamilySpec:
    name: str
    routes: tuple[Route, ...]
    router: str  # the module under emd_proxy.routes with the family's `router`
    timeout: TimeoutClass


FAMILIES: tuple[FamilySpec, ...] = (
    FamilySpec(
        MODELS,
        (Route("GET", "/v1/models"), Route("GET", "/v1/models/{id+}"), Route("GET", "/health")),
        "models",
        "instant",
    ),
    FamilySpec("chat", (Route("POST", "/v1/chat/completions"),), "chat", "long"),
    FamilySpec("embeddings", (Route("POST", "/v1/embeddings"),), "embeddings", "short"),
    FamilySpec("rerank", (Route("POST", "/v1/rerank"),), "rerank", "short"),
    FamilySpec("invocations", (Route("POST", "/v1/invocations"),), "invocations", "long"),
    FamilySpec("audio", (Route("POST", "/v1/audio/transcriptions"),), "audio", "long"),
)
BY_NAME = {spec.name: spec for spec in FAMILIES}
# Every model family, in table order (what a process serves when EMD_FAMILIES is unset).
MODEL_FAMILIES: tuple[Family, ...] = tuple(s.name for s in FAMILIES if s.name != MODELS)  # type: ignore[misc]
