"""The ASGI app: `create_app()` wires settings, registry, keys and the SageMaker client
into FastAPI, mounts the routers of the families this process serves (EMD_FAMILIES,
from the family table; a Lambda imports only its own family's modules), and renders
every failure in OpenAI's error shape (Anthropic's on /v1/messages)."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .auth import KeyStore
from .errors import (
    InternalError,
    InvalidRequestError,
    MethodNotAllowedError,
    ProxyError,
    RouteNotFoundError,
)
from .families import BY_NAME, MODELS
from .log import logger
from .middleware import GatewayMiddleware
from .openapi import add_components
from .registry import Registry
from .sagemaker_client import SageMakerRuntime
from .settings import Settings
from .shapes.anthropic import error_body_for
from .state import Services
from .validation import validation_error
from .wake import ControlPlane, Waker
from .workers import WorkerPool


def keys_from_settings(settings: Settings) -> KeyStore:
    if settings.api_key_secret_id:
        return KeyStore.from_secret(
            settings.api_key_secret_id, settings.key_cache_seconds, settings.key_stale_max_seconds
        )
    if settings.api_keys_file:
        return KeyStore.from_file(
            settings.api_keys_file, settings.key_cache_seconds, settings.key_stale_max_seconds
        )
    raise ValueError("no API keys configured: set EMD_API_KEY_SECRET_ID or EMD_API_KEYS_FILE")


def create_app(
    settings: Settings | None = None,
    *,
    registry: Registry | None = None,
    keys: KeyStore | None = None,
    sagemaker: SageMakerRuntime | None = None,
) -> FastAPI:
    settings = settings or Settings.from_env()
    pool = WorkerPool(settings.max_concurrency)
    services = Services(
        settings=settings,
        registry=registry or Registry.from_env(),
        keys=keys or keys_from_settings(settings),
        sagemaker=sagemaker or SageMakerRuntime(settings, offload=pool.run),
        pool=pool,
        waker=Waker(settings, ControlPlane(pool.run)),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await services.aclose()

    app = FastAPI(
        title="EMD gateway",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # FastAPI's native OpenTelemetry looks up global providers on every request;
        # tracing here is X-Ray's (Lambda), not OTel's.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = services
    app.add_middleware(GatewayMiddleware, services=services)
    for family in (MODELS, *settings.families):
        module = importlib.import_module(f"{__package__}.routes.{BY_NAME[family].router}")
        app.include_router(module.router)

    _install_error_handlers(app)
    _add_components(app)
    return app


def _add_components(app: FastAPI) -> None:
    """/openapi.json comes from the routes' declarations (openapi.py: answer and error
    models, Bearer security); this adds the components no route can declare."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            add_components(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _install_error_handlers(app: FastAPI) -> None:
    def render(request: Request, exc: ProxyError) -> JSONResponse:
        body = error_body_for(request.scope["path"], exc)
        return JSONResponse(body, status_code=exc.status, headers=exc.headers())

    async def on_proxy_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProxyError)
        return render(request, exc)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return render(request, validation_error(exc.errors()))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return render(request, RouteNotFoundError("Unknown route."))
        if exc.status_code == 405:
            return render(request, MethodNotAllowedError("Method not allowed on this route."))
        return render(request, InvalidRequestError(str(exc.detail)))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", extra={"error": type(exc).__name__})
        return render(request, InternalError("The gateway failed to handle the request."))

    app.add_exception_handler(ProxyError, on_proxy_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
