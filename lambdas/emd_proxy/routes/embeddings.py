"""POST /v1/embeddings: batches large inputs into the container's batch size (order
kept), shortens vectors when the engine cannot, encodes base64 as OpenAI does."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ..engines import adapter
from ..errors import InvalidRequestError
from ..jsonio import StrictJsonRoute
from ..openapi import BEARER_AUTH, ERROR_RESPONSES
from ..schemas.embeddings import EmbeddingList, EmbeddingsRequest
from ..state import principal, services
from ..vectors import estimate_tokens, shorten, to_base64

router = APIRouter(route_class=StrictJsonRoute, responses=ERROR_RESPONSES)


@router.post(
    "/v1/embeddings",
    response_model=Any,  # the dict as is, unvalidated: see openapi.py
    responses={200: {"model": EmbeddingList}},
    openapi_extra=BEARER_AUTH,
)
async def create_embeddings(body: EmbeddingsRequest, request: Request) -> dict[str, Any]:
    svc = services(request)
    entry = svc.registry.resolve(body.model, "embeddings", principal(request).models)
    engine = adapter(entry, "embeddings")
    inputs = body.inputs()
    token_ids = isinstance(inputs[0], list)
    if token_ids and not (
        engine.accepts_token_ids and (entry.features.model_extra or {}).get("token_ids", True)
    ):
        raise InvalidRequestError(
            f"The model `{entry.id}` takes text input only, not token ids.", param="input"
        )
    native = body.dimensions if engine.native_dimensions else None
    extra = body.model_extra or {}
    size = engine.max_batch
    batches = [inputs[i : i + size] for i in range(0, len(inputs), size)]
    calls = [engine.build(batch, native, extra) for batch in batches]  # type: ignore[arg-type]
    answers = await svc.invoke_all(entry.endpoint, calls)
    parsed = [engine.parse(a.body, len(b)) for a, b in zip(answers, batches, strict=True)]
    vectors = [v for batch in parsed for v in batch.vectors]
    if body.dimensions is not None and not engine.native_dimensions:
        vectors = [shorten(v, body.dimensions) for v in vectors]
    encode = to_base64 if body.encoding_format == "base64" else None
    if all(p.prompt_tokens is not None for p in parsed):
        tokens = sum(p.prompt_tokens or 0 for p in parsed)
    elif token_ids:
        tokens = sum(len(i) for i in inputs)
    else:
        tokens = sum(estimate_tokens(i) for i in inputs)  # type: ignore[arg-type]
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(v) if encode else v}
            for i, v in enumerate(vectors)
        ],
        "model": entry.id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
