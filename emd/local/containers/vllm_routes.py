"""The vLLM DLC's CustomAttributes routing (Amazon Linux image), as the fakes of vLLM
must honour it: the first `route=(/[^\\s,]+)` found anywhere in
`X-Amzn-SageMaker-Custom-Attributes` replaces the path of a POST /invocations, so
the request reaches that route of the server instead (aws/deep-learning-containers
scripts/docker/vllm/sagemaker_serve.py, `SageMakerRouteMiddleware`)."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

_ROUTE = re.compile(r"route=(/[^\s,]+)")


def _route(headers: list[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key.lower() == b"x-amzn-sagemaker-custom-attributes":
            found = _ROUTE.search(value.decode())
            return found.group(1) if found else None
    return None


class SageMakerRouteMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/invocations":
            route = _route(scope.get("headers", []))
            if route:
                scope = {**scope, "path": route, "raw_path": route.encode()}
        await self.app(scope, receive, send)
