"""disconnect.py: the handler raced against the client's `http.disconnect`, and the
499 the access log records when the client left first."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI

from emd_proxy.disconnect import ClientDisconnected, until_disconnected
from emd_proxy.jsonio import StrictJsonRoute


def receiver(*messages: dict[str, Any], then_wait: asyncio.Event | None = None):
    """An ASGI receive: the given messages, then (if an event) nothing until it is set,
    then `http.disconnect`."""
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        if then_wait is not None:
            await then_wait.wait()
        return {"type": "http.disconnect"}

    return receive


def test_the_work_answers_when_the_client_stays() -> None:
    async def scenario() -> int:
        async def work() -> int:
            await asyncio.sleep(0)
            return 7

        return await until_disconnected(receiver(then_wait=asyncio.Event()), work())

    assert asyncio.run(scenario()) == 7


def test_a_disconnect_cancels_the_work_and_waits_for_its_cleanup() -> None:
    cleaned: list[str] = []

    async def scenario() -> None:
        gone = asyncio.Event()

        async def work() -> None:
            try:
                await asyncio.sleep(30)
            finally:
                await asyncio.sleep(0)  # cleanup that awaits (closing a connection)
                cleaned.append("closed")

        asyncio.get_running_loop().call_later(0.01, gone.set)
        await until_disconnected(receiver(then_wait=gone), work())

    with pytest.raises(ClientDisconnected):
        asyncio.run(scenario())
    assert cleaned == ["closed"]


def test_a_receive_that_breaks_the_rule_stops_the_watch_not_the_work() -> None:
    async def scenario() -> str:
        async def work() -> str:
            await asyncio.sleep(0.01)
            return "answer"

        # A server that sends more body after the end: not a disconnect.
        chatty = receiver({"type": "http.request", "body": b"", "more_body": False})
        return await until_disconnected(chatty, work())

    assert asyncio.run(scenario()) == "answer"


def test_a_route_whose_client_left_answers_499_and_its_handler_is_cancelled() -> None:
    cancelled: list[bool] = []
    router = APIRouter(route_class=StrictJsonRoute)

    @router.post("/slow")
    async def slow() -> dict[str, str]:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return {}

    app = FastAPI()
    app.include_router(router)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def scenario() -> None:
        gone = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, gone.set)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "path": "/slow",
            "raw_path": b"/slow",
            "root_path": "",
            "scheme": "http",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2),
        }
        body = {"type": "http.request", "body": b"{}", "more_body": False}
        await asyncio.wait_for(app(scope, receiver(body, then_wait=gone), send), 10)

    asyncio.run(scenario())
    assert cancelled == [True]
    assert sent[0]["status"] == 499
