"""MobiliaChat web app (Hugging Face Spaces style): `python app.py` from the repository root.

Reads settings, builds the services once, prepares storage and the knowledge base in the
background, and serves the Gradio Blocks UI at / mounted on the FastAPI app of the HTTP API
(`/api/v1`, docs at `/docs`), with uvicorn.
"""

from __future__ import annotations

MB = 1024 * 1024


def server_options(settings) -> dict:
    """uvicorn options; forwarded headers (client address, scheme) are believed only from trusted proxies.

    uvicorn's default trusts ``X-Forwarded-For`` from 127.0.0.1, which would let any local client pick
    the address the rate limits key on; with MOBILIA_TRUSTED_PROXIES empty nothing is trusted.
    """
    trusted = ",".join(settings.trusted_proxies)
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted,
        # Open event streams (browsers, gradio_client) must not hold a stop or restart forever.
        "timeout_graceful_shutdown": 5,
    }


def main() -> None:
    """Build and launch the app."""
    import gc

    from fastboot import skip_gradio_stub_writing

    skip_gradio_stub_writing()  # ~1 s of CPU less to import Gradio (see fastboot.py)
    from api.config import MissingSecretKey, app_secret_key
    from logsetup import configure_logging
    from services import build_services
    from settings import get_settings

    settings = get_settings()
    try:
        secret = app_secret_key(settings)  # before anything connects: refuse to start without one
    except MissingSecretKey as exc:
        raise SystemExit(f"MobiliaChat: {exc}") from None
    configure_logging(settings.log_level, settings.log_format)  # one redacting handler, text or JSON lines
    services = build_services(settings)
    # Model and index load first, while the web stack below is imported and built.
    services.prepare_in_background()

    import gradio as gr
    import uvicorn

    from api import create_api
    from ui import build_app, quiet_queue

    app = build_app(services)
    # The change watcher, and the social monitor (when Mastodon is configured) under its lease: one per cluster.
    services.start_background()
    try:
        api = create_api(services, secret_key=secret)
        server = gr.mount_gradio_app(api, quiet_queue(app, default_concurrency_limit=8), path="/", show_error=False,
                                     max_file_size=int(settings.max_upload_mb * MB))
        # What start-up built (modules, Gradio's and the API's apps, the services) lives as long as the process:
        # out of the cyclic GC's reach, the full collections that traffic triggers no longer walk it.
        gc.freeze()
        # log_config=None: uvicorn's records go to the root handler above (redacted, same format).
        uvicorn.run(server, **server_options(settings), log_config=None)
    finally:
        services.close()


if __name__ == "__main__":
    main()
