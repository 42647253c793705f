"""POST /v1/chat/completions.

The engine is always asked to stream (see engines/base.py). For a client stream the
first chunks are read before the response starts, so a failure to start (throttling,
missing endpoint, a request the engine rejects in its stream) keeps its real HTTP
status; only what fails later becomes an error event."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..engines import adapter
from ..engines.base import first_batch
from ..engines.families import UpstreamCall
from ..gateway import gateway, principal
from ..jsonio import StrictJsonRoute
from ..metrics import record_usage
from ..schemas.chat import ChatCompletionRequest

router = APIRouter(route_class=StrictJsonRoute)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.post("/v1/chat/completions", response_model=None)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request
) -> JSONResponse | StreamingResponse:
    gw = gateway(request)
    caller = principal(request)
    entry = gw.registry.resolve(body.model, "chat", caller.models)
    engine = adapter(entry, "chat")
    call = UpstreamCall(engine.build_payload(body, entry), engine.content_type)
    on_usage = partial(record_usage, caller.name, entry.id)
    _, stream = await gw.open_stream(entry.endpoint, call)
    if not body.stream:
        return JSONResponse(
            await engine.complete(engine.chunks(stream, entry, body), entry, on_usage)
        )
    batches = engine.chunks(stream, entry, body)
    first = await first_batch(batches)
    return StreamingResponse(
        engine.sse_stream(
            first,  # type: ignore[arg-type]
            batches,
            entry,
            include_usage=body.wants_usage_chunk,
            on_usage=on_usage,
        ),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )
