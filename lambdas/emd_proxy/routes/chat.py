"""POST /v1/chat/completions: the engine's normalised chunk stream, as SSE or folded
into one `chat.completion` (streaming.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..generation import answer_chat, chat_model, open_chat, stream_sse
from ..jsonio import StrictJsonRoute
from ..openapi import BEARER_AUTH, ERROR_RESPONSES, event_stream
from ..schemas.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from ..shapes.chat import ChatEvents

router = APIRouter(route_class=StrictJsonRoute, responses=ERROR_RESPONSES)


@router.post(
    "/v1/chat/completions",
    response_model=None,
    responses={
        200: {
            "model": ChatCompletion,
            "description": "The completion; with `stream: true`, `chat.completion.chunk` "
            "events ending with `data: [DONE]`",
            "content": event_stream(ChatCompletionChunk),
        }
    },
    openapi_extra=BEARER_AUTH,
)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request
) -> JSONResponse | StreamingResponse:
    entry = chat_model(request, body.model)
    if not body.stream:
        return JSONResponse(await answer_chat(request, entry, body))
    return await stream_sse(
        request,
        entry,
        lambda: open_chat(request, entry, body, wait=False),
        ChatEvents(include_usage=body.wants_usage_chunk),
    )
