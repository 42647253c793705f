"""What every request needs, built once per process and kept on `app.state`."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from .auth import KeyStore, Principal
from .registry import Registry
from .sagemaker_client import SageMakerRuntime
from .settings import Settings
from .streaming import WorkerPool


@dataclass
class Gateway:
    settings: Settings
    registry: Registry
    keys: KeyStore
    sagemaker: SageMakerRuntime
    pool: WorkerPool


def gateway(request: Request) -> Gateway:
    return request.app.state.gateway  # type: ignore[no-any-return]


def principal(request: Request) -> Principal:
    """The caller, set by the middleware on every /v1 request."""
    return request.scope["emd.principal"]  # type: ignore[no-any-return]
