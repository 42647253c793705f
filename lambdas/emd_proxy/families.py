"""The endpoint families, one row each: the routes a family answers, the router module
that serves them, which models its requests resolve to, and how long they may run.
The app mounts routers from this table, the settings check EMD_FAMILIES against it,
and infra builds one Lambda per row with these API Gateway routes, allowed to invoke
only the endpoints of the row's models.
Adding a family: a row here, `routes/<router>.py` and its schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# What a model can serve (registry entries list these). Several API families serve
# one model family: chat models answer chat completions, legacy completions, the
# Responses API and Anthropic messages.
Family = Literal["chat", "embeddings", "rerank", "invocations", "audio"]
# The pseudo-family every process serves: /v1/models and /health (EMD_FAMILIES=models
# names the Lambda that serves only these).
MODELS = "models"
# How long a family's requests may run: `long` streams up to API Gateway's 15 minute
# limit (generation, raw invocations); `short` is one real-time InvokeEndpoint, which
# SageMaker ends at 60 s (embeddings, rerank, transcription: a longer Lambda would buy
# nothing); `instant` is local work.
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
    models: Family | None  # the models its requests resolve to (None: no model call)
    timeout: TimeoutClass


def _post(*paths: str) -> tuple[Route, ...]:
    return tuple(Route("POST", path) for path in paths)


FAMILIES: tuple[FamilySpec, ...] = (
    FamilySpec(
        MODELS,
        (Route("GET", "/v1/models"), Route("GET", "/v1/models/{id+}"), Route("GET", "/health")),
        "models",
        None,
        "instant",
    ),
    FamilySpec("chat", _post("/v1/chat/completions"), "chat", "chat", "long"),
    FamilySpec(
        "messages", _post("/v1/messages", "/v1/messages/count_tokens"), "messages", "chat", "long"
    ),
    FamilySpec("completions", _post("/v1/completions"), "completions", "chat", "long"),
    FamilySpec(
        "responses",
        (Route("POST", "/v1/responses"), Route("GET", "/v1/responses/{id+}")),
        "responses",
        "chat",
        "long",
    ),
    FamilySpec("embeddings", _post("/v1/embeddings"), "embeddings", "embeddings", "short"),
    FamilySpec("rerank", _post("/v1/rerank", "/v2/rerank", "/rerank"), "rerank", "rerank", "short"),
    FamilySpec("invocations", _post("/v1/invocations"), "invocations", "invocations", "long"),
    FamilySpec(
        "audio",
        _post("/v1/audio/transcriptions", "/v1/audio/translations"),
        "audio",
        "audio",
        "short",
    ),
)
BY_NAME = {spec.name: spec for spec in FAMILIES}
# Every family but MODELS, in table order (what a process serves when EMD_FAMILIES is
# unset).
API_FAMILIES: tuple[str, ...] = tuple(s.name for s in FAMILIES if s.name != MODELS)


def api_paths(model_families: list[str]) -> list[str]:
    """The POST routes that answer a model of these families, in table order: what
    /v1/models shows a client it can call with the model (a chat model also answers
    /v1/messages, /v1/completions and /v1/responses)."""
    return [
        route.path
        for spec in FAMILIES
        if spec.models in model_families
        for route in spec.routes
        if route.method == "POST"
    ]
