"""A client that goes away cancels the work it asked for.

Every route's handler runs raced against the client's disconnect (jsonio.StrictJsonRoute
wires it, so no route has to): once the request body is read, the ASGI `receive`
channel has nothing left to give but `http.disconnect`, so one listener task waits on
it. If it comes first, the handler's task is cancelled and its cleanup awaited before
anything is answered: an InvokeEndpoint call in flight drops its connection (aiohttp
closes a connection whose request or answer was cut, it never goes back to the pool
half-read), every batch of `Services.invoke_all` is cancelled, and a stream that had
not sent its first byte (`streaming.started`) closes its upstream stream. The answer
is an empty 499 (nginx's "client closed request") that nobody reads: it is what the
access log records.

Once a streamed response has started, Starlette's StreamingResponse watches the same
channel and `streaming.sse_body` closes the upstream stream when it stops.

The same path serves every deployment: uvicorn answers locally and in the Lambda
(behind the Lambda Web Adapter, whose closed connection is the disconnect). Nothing
polls: the listener costs one task per request, idle until the request ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Receive

T = TypeVar("T")

CLIENT_CLOSED_REQUEST = 499


class ClientDisconnected(Exception):
    """The client left before its answer started; its work was cancelled."""


async def until_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """`work`'s result, or `ClientDisconnected` once the client has gone and `work`
    has been cancelled and has finished cleaning up. `receive` must have delivered the
    whole request body already (the listener and a body read cannot share it)."""
    task = asyncio.ensure_future(work)
    listener = asyncio.ensure_future(_client_left(receive))
    try:
        await asyncio.wait((task, listener), return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and _left(listener):
            task.cancel()
            await asyncio.wait((task,))  # its finally blocks close the upstream calls
            if not task.cancelled():
                task.exception()  # whatever it ended with, nobody will read it
            raise ClientDisconnected
        return await task
    finally:
        listener.cancel()
        task.cancel()  # a no-op unless we were cancelled ourselves


async def _client_left(receive: Receive) -> bool:
    # After the body, a server has only `http.disconnect` to deliver. Anything else
    # (a server that breaks the rule) ends the watch instead of spinning on it.
    return (await receive())["type"] == "http.disconnect"


def _left(listener: asyncio.Future[bool]) -> bool:
    if not listener.done() or listener.cancelled():
        return False
    return listener.exception() is None and listener.result()
