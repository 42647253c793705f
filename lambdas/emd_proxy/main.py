"""Entry point for uvicorn in Lambda: `uvicorn emd_proxy.main:create_app --factory`."""

from .app import create_app

__all__ = ["create_app"]
