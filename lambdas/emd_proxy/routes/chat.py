"""POST /v1/chat/completions.

Streaming: the endpoint is called before the response starts, so a failure to start
(throttling, missing endpoint, container 4xx) keeps its real HTTP status; only what
fails after the first byte becomes an error event."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..engines import adapter
from ..engines.families import UpstreamCall
from ..gateway import gateway, principal
from ..schemas.chat import ChatCompletionRequest

router = APIRouter()

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.post("/v1/chat/completions", response_model=None)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request
) -> JSONResponse | StreamingResponse:
    gw = gateway(request)
    entry = gw.registry.resolve(body.model, "chat", principal(request).models)
    engine = adapter(entry, "chat")
    call = UpstreamCall(engine.build_payload(body, entry), engine.content_type)
    if body.stream:
        upstream = await gw.invoke_stream(entry.endpoint, call)
        parts = gw.pool.iterate_parts(upstream, gw.settings.keepalive_seconds)
        return StreamingResponse(
            engine.sse_stream(parts, entry, include_usage=body.wants_usage_chunk),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    response = await gw.invoke(entry.endpoint, call)
    return JSONResponse(engine.parse_response(response.body, entry))
