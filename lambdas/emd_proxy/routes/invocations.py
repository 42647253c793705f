"""POST /v1/invocations: raw pass-through for payloads the OpenAI schema does not
cover. `input` becomes the endpoint's body; the container's answer and content type
come back untouched (streamed when asked)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from ..engines.families import UpstreamCall
from ..errors import InvalidRequestError, ProxyError, UpstreamError
from ..gateway import gateway, principal
from ..jsonio import StrictJsonRoute, dumps
from ..log import logger
from ..schemas.invocations import InvocationsRequest
from ..sse import DONE, KEEPALIVE, event

router = APIRouter(route_class=StrictJsonRoute)


def _payload(body: InvocationsRequest) -> bytes:
    if "json" in body.content_type.lower():
        return dumps(body.input)
    if isinstance(body.input, str):
        return body.input.encode()
    raise InvalidRequestError(
        "With a non-JSON content_type, input must be a string.", param="input"
    )


@router.post("/v1/invocations", response_model=None)
async def invoke(body: InvocationsRequest, request: Request) -> Response:
    gw = gateway(request)
    entry = gw.registry.resolve(body.model, "invocations", principal(request).models)
    call = UpstreamCall(_payload(body), body.content_type, body.accept, body.custom_attributes)
    if not body.stream:
        answer = await gw.invoke(entry.endpoint, call)
        return Response(answer.body, media_type=answer.content_type)
    upstream, parts = await gw.open_stream(entry.endpoint, call)
    sse = upstream.content_type.startswith("text/event-stream")
    return StreamingResponse(_relay(parts, sse), media_type=upstream.content_type)


async def _relay(parts: AsyncIterator[bytes | None], sse: bool) -> AsyncIterator[bytes]:
    """Bytes as they come. Only an SSE stream has a way to carry keep-alives and a
    late error; other content types just end."""
    try:
        async for part in parts:
            if part is not None:
                yield part
            elif sse:
                yield KEEPALIVE
    except ProxyError as exc:
        if sse:
            yield event(exc.body())
            yield DONE
    except Exception:  # noqa: BLE001 - a bug must still end the stream cleanly
        logger.exception("raw stream failed")
        if sse:
            yield event(UpstreamError("The model's response could not be read.").body())
            yield DONE
