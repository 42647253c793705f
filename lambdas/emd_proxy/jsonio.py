"""Strict JSON in and out.

Python's json module accepts what no JSON peer should get: NaN/Infinity, lone UTF-16
surrogates and nesting a thousand levels deep; pydantic_core's parser refuses them
(so the client gets a 400, not a 502 from the container or a 500 from us) and is
faster. `StrictJsonRoute` makes FastAPI parse request bodies with it, and runs every
handler raced against the client's disconnect (disconnect.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from pydantic_core import PydanticSerializationError, from_json, to_json
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .disconnect import CLIENT_CLOSED_REQUEST, ClientDisconnected, until_disconnected
from .errors import InvalidRequestError


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = from_json(body, allow_inf_nan=False)
            except ValueError as exc:
                # FastAPI turns exactly this into its `json_invalid` validation error.
                raise json.JSONDecodeError(str(exc), body.decode("utf-8", "replace"), 0) from exc
        return self._json


class StrictJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            strict_request = StrictJsonRequest(request.scope, request.receive)
            try:
                # The whole body first: then `receive` is free for the disconnect
                # listener (the handler reads the cached body).
                await strict_request.body()
                return await until_disconnected(request.receive, handler(strict_request))
            except (ClientDisconnect, ClientDisconnected):
                # Nobody reads this answer; the access log records that the client left.
                return Response(status_code=CLIENT_CLOSED_REQUEST)

        return strict


def dumps(value: Any) -> bytes:
    """JSON for a container; what cannot be JSON is the client's mistake."""
    try:
        return to_json(value)
    except PydanticSerializationError as exc:
        raise InvalidRequestError(
            "The request contains a value that cannot be sent as JSON."
        ) from exc
