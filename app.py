"""MobiliaChat web app (Hugging Face Spaces style): `python app.py` from the repository root.

Reads settings, builds the services once, prepares storage and the knowledge base in the
background, and serves the Gradio Blocks UI.
"""

from __future__ import annotations

import logging


def main() -> None:
    """Build and launch the app."""
    from services import build_services
    from settings import get_settings
    from ui import build_app

    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    services = build_services(settings)
    services.prepare_in_background()
    app = build_app(services)
    monitor = services.social_monitor  # None unless Mastodon URL and token are configured
    if monitor is not None:
        monitor.start()
    try:
        app.queue(default_concurrency_limit=8).launch(
            server_name=settings.host, server_port=settings.port, show_error=False
        )
    finally:
        if monitor is not None:
            monitor.stop()


if __name__ == "__main__":
    main()
