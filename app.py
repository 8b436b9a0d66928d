"""MobiliaChat web app (Hugging Face Spaces style): `python app.py` from the repository root.

Reads settings, builds the services once, prepares storage and the knowledge base in the
background, and serves the Gradio Blocks UI at / mounted on the FastAPI app of the HTTP API
(`/api/v1`, docs at `/docs`), with uvicorn.
"""

from __future__ import annotations

import logging


def main() -> None:
    """Build and launch the app."""
    from services import build_services
    from settings import get_settings

    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    services = build_services(settings)
    # Model and index load first, while the web stack below is imported and built.
    services.prepare_in_background()

    import gradio as gr
    import uvicorn

    from api import create_api
    from ui import build_app

    app = build_app(services)
    monitor = services.social_monitor  # None unless Mastodon URL and token are configured
    if monitor is not None:
        monitor.start()
    try:
        api = create_api(services)
        server = gr.mount_gradio_app(api, app.queue(default_concurrency_limit=8), path="/", show_error=False)
        # Open event streams (browsers, gradio_client) must not hold a stop or restart forever.
        uvicorn.run(server, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                    timeout_graceful_shutdown=5)
    finally:
        if monitor is not None:
            monitor.stop()


if __name__ == "__main__":
    main()
