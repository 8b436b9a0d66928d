"""HTTP API of MobiliaChat (`/api/v1`), mounted with the Gradio app; see ``api.app.create_api``."""

from __future__ import annotations


def create_api(services, **kwargs):
    """Build the FastAPI app over ``services`` (imported lazily: settings import ``api.config``)."""
    from api.app import create_api as _create_api

    return _create_api(services, **kwargs)


__all__ = ["create_api"]
