"""POST /v1/invocations: raw pass-through for payloads the OpenAI schema does not
cover. `input` becomes the endpoint's body; the container's answer and content type
come back untouched (streamed when asked)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..engines.custom_attributes import check_custom_attributes
from ..errors import InvalidRequestError
from ..jsonio import StrictJsonRoute, dumps
from ..openapi import BEARER_AUTH, ERROR_RESPONSES
from ..sagemaker_client import UpstreamCall
from ..schemas.invocations import InvocationsRequest
from ..shapes.raw import RawEvents
from ..state import principal, services
from ..streaming import sse_response, started

router = APIRouter(route_class=StrictJsonRoute, responses=ERROR_RESPONSES)


def _payload(body: InvocationsRequest) -> bytes:
    if "json" in body.content_type.lower():
        return dumps(body.input)
    if isinstance(body.input, str):
        return body.input.encode()
    raise InvalidRequestError(
        "With a non-JSON content_type, input must be a string.", param="input"
    )


# The container's answer, untouched: no schema of ours describes it.
_ANSWER = {
    "description": "The container's answer with its content type; with `stream: true`, "
    "its stream as the container sends it",
    "content": {"application/json": {"schema": {}}, "text/event-stream": {"schema": {}}},
}


@router.post(
    "/v1/invocations",
    response_model=None,
    responses={200: _ANSWER},
    openapi_extra=BEARER_AUTH,
)
async def invoke(body: InvocationsRequest, request: Request) -> Response:
    svc = services(request)
    entry = svc.registry.resolve(body.model, "invocations", principal(request).models)
    # Containers route and pick models by CustomAttributes: only the model's own.
    check_custom_attributes(body.custom_attributes, entry)
    call = UpstreamCall(_payload(body), body.content_type, body.accept, body.custom_attributes)
    if not body.stream:
        answer = await svc.invoke(entry, call, request)
        return Response(answer.body, media_type=answer.content_type)
    # A model waking from zero is waited for as for a non-stream request: the
    # stream's framing is the container's, so there is no comment to hold it with.
    upstream, parts = await svc.open_stream(entry, call, request=request)
    # The first part is read before the response starts, so a stream that fails at
    # once keeps its real status (a cut after a 200 is all a client could see later).
    return sse_response(await started(parts), RawEvents(upstream.content_type))
