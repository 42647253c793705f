"""POST /v1/rerank: Cohere/Jina-shaped answer, sorted by relevance, `top_n` honoured;
documents beyond the container's batch size are scored in several calls."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request

from ..engines import adapter
from ..engines.adapters import Score
from ..errors import UpstreamError
from ..jsonio import StrictJsonRoute
from ..openapi import BEARER_AUTH, ERROR_RESPONSES
from ..schemas.rerank import RerankRequest, RerankResponse
from ..state import principal, services
from ..vectors import estimate_tokens

router = APIRouter(route_class=StrictJsonRoute, responses=ERROR_RESPONSES)


# Cohere's v2 clients call /v2/rerank; some Jina/TEI clients call /rerank.
@router.post("/rerank", response_model=Any, include_in_schema=False)
@router.post("/v2/rerank", response_model=Any, include_in_schema=False)
@router.post(
    "/v1/rerank",
    response_model=Any,  # the dict as is, unvalidated: see openapi.py
    responses={200: {"model": RerankResponse}},
    openapi_extra=BEARER_AUTH,
)
async def rerank(body: RerankRequest, request: Request) -> dict[str, Any]:
    svc = services(request)
    entry = svc.registry.resolve(body.model, "rerank", principal(request).models)
    engine = adapter(entry, "rerank")
    texts = body.texts()
    extra = {k: v for k, v in (body.model_extra or {}).items() if k != "top_n"}
    size = engine.max_batch
    starts = list(range(0, len(texts), size))
    calls = [engine.build(body.query, texts[s : s + size], extra) for s in starts]
    answers = await svc.invoke_all(entry, calls, request=request)
    scores: list[Score] = []
    tokens: int | None = 0
    for start, answer in zip(starts, answers, strict=True):
        batch, batch_tokens = engine.parse(answer.body)
        scores += [Score(start + s.index, s.score) for s in batch]
        tokens = None if tokens is None or batch_tokens is None else tokens + batch_tokens
    if sorted(s.index for s in scores) != list(range(len(texts))):
        raise UpstreamError("The model did not score every document exactly once.")
    scores.sort(key=lambda s: s.score, reverse=True)
    if body.top_n is not None:
        scores = scores[: body.top_n]
    if tokens is None:
        tokens = len(texts) * estimate_tokens(body.query) + sum(estimate_tokens(t) for t in texts)
    results: list[dict[str, Any]] = []
    for s in scores:
        result: dict[str, Any] = {"index": s.index, "relevance_score": s.score}
        if body.return_documents:
            result["document"] = {"text": texts[s.index]}
        results.append(result)
    return {
        "id": f"rerank-{uuid.uuid4().hex}",
        "model": entry.id,
        "results": results,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
