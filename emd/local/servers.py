"""ASGI apps under real uvicorn on loopback sockets, all in one background thread with
its own event loop (the containers and the emulator), so what they do never competes
with the proxy's loop, and streams go over real sockets (ASGITransport would buffer)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from .http_limits import BodyTimeout, ReadLimits, protocol_class


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one. Raises OSError if taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this; without it every response pays Nagle +
    # delayed-ACK (~40 ms on loopback).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: ASGIApp, **overrides: object) -> uvicorn.Config:
    options: dict[str, object] = {
        "log_level": "warning",
        "access_log": False,
        "lifespan": "off",
        "timeout_graceful_shutdown": 1,
        "timeout_keep_alive": 75,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)  # type: ignore[arg-type]


def public_uvicorn_config(app: ASGIApp, limits: ReadLimits, **overrides: object) -> uvicorn.Config:
    """The proxy's socket, which clients reach: head and body read deadlines and a head
    size limit (http_limits.py; uvicorn's h11 protocol, which can bound the head)."""
    return uvicorn_config(
        BodyTimeout(app, limits.body_seconds),
        http=protocol_class(limits),
        h11_max_incomplete_event_size=limits.header_bytes,
        **overrides,
    )


@dataclass
class _Served:
    server: uvicorn.Server
    sock: socket.socket


class BackgroundServers:
    def __init__(self, name: str = "emd-local") -> None:
        self._name = name
        self._served: list[_Served] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        lifespan: bool = False,
        limits: ReadLimits | None = None,
    ) -> str:
        """Binds now (so the URL is known at once); serves once `start()` runs. An app
        with `lifespan` gets its startup and shutdown (the proxy closes its upstream
        connections there); one with `limits` faces clients (the proxy)."""
        sock = bind_socket(host, port)
        lifespan_mode = "on" if lifespan else "off"
        config = (
            public_uvicorn_config(app, limits, lifespan=lifespan_mode)
            if limits
            else uvicorn_config(app, lifespan=lifespan_mode)
        )
        self._served.append(_Served(uvicorn.Server(config), sock))
        bound_host, bound_port = sock.getsockname()[:2]
        return f"http://{bound_host}:{bound_port}"

    def start(self, timeout: float = 30.0) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not all(s.server.started for s in self._served):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("local servers did not start")
            time.sleep(0.01)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            await asyncio.gather(*(s.server.serve(sockets=[s.sock]) for s in self._served))

        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:  # pragma: no cover - uvloop is not on every platform
            loop_factory = asyncio.new_event_loop
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(main())

    def stop(self, timeout: float = 3.0) -> None:
        for served in self._served:
            served.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        for served in self._served:
            served.sock.close()
