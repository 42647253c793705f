"""POST /v1/completions (legacy): the prompt goes to the engine as a completion request
(every chat engine serves them natively); its chunks travel the same pipeline as
chat and come back as `text_completion` objects (shapes/completions.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..engines import adapter
from ..generation import answer_completion, chat_model, open_generation, stream_sse
from ..jsonio import StrictJsonRoute
from ..openapi import BEARER_AUTH, ERROR_RESPONSES, event_stream
from ..schemas.completions import CompletionRequest, TextCompletion
from ..shapes.completions import ID_PREFIX, CompletionEvents, TextChunks

router = APIRouter(route_class=StrictJsonRoute, responses=ERROR_RESPONSES)


@router.post(
    "/v1/completions",
    response_model=None,
    responses={
        200: {
            "model": TextCompletion,
            "description": "The completion; with `stream: true`, `text_completion` chunks "
            "ending with `data: [DONE]`",
            "content": event_stream(TextCompletion),
        }
    },
    openapi_extra=BEARER_AUTH,
)
async def create_completion(
    body: CompletionRequest, request: Request
) -> JSONResponse | StreamingResponse:
    entry = chat_model(request, body.model)
    if not body.stream:
        return JSONResponse(await answer_completion(request, entry, body))
    engine = adapter(entry, "chat")
    call = engine.completion_call(body, entry)
    return await stream_sse(
        request,
        entry,
        # A fresh fixer for each opening (a model waking from zero is opened again).
        lambda: open_generation(
            request, entry, call, TextChunks(engine.fixer(body)), ID_PREFIX, wait=False
        ),
        CompletionEvents(include_usage=body.wants_usage_chunk),
    )
