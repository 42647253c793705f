"""Entry point for uvicorn in Lambda: `uvicorn emd_proxy.main:create_app --factory`.

The garbage collector is off while the app is imported and built: start-up allocates
many objects and frees next to none, so collections then only cost time (about 50 ms
of a cold start). What start-up built lives as long as the process, so it is frozen out
of every later collection, which keeps those short."""

import gc

gc.disable()

from fastapi import FastAPI  # noqa: E402 - after gc.disable(), on purpose

from .app import create_app as _create_app  # noqa: E402


def create_app() -> FastAPI:
    try:
        return _create_app()
    finally:
        gc.freeze()
        gc.enable()


__all__ = ["create_app"]
