"""Spoofed X-Forwarded-For against the API served by uvicorn with app.py's options (issue 12, finding 4).

uvicorn's own default believes X-Forwarded-For from 127.0.0.1, so a local client could pick a new
address per request and escape the per-client limits. The app trusts forwarded headers only from
MOBILIA_TRUSTED_PROXIES (empty by default); the login lock-out also holds per account.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import PASSWORD, build_api_services
from tests.conftest import free_port

LOGIN = "/api/v1/auth/login"
START_TIMEOUT_S = 30


@contextlib.contextmanager
def serve(db, engine, **overrides) -> Iterator[httpx.Client]:
    """The API under a real uvicorn (in a thread) configured by ``app.server_options``."""
    import uvicorn

    from api import create_api
    from app import server_options

    services = build_api_services(db, engine, host="127.0.0.1", port=free_port(), **overrides)
    services.staff.create_user("victim", PASSWORD, "agent")
    api = create_api(services)
    server = uvicorn.Server(uvicorn.Config(api, **server_options(services.settings), log_config=None))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{services.settings.port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(15)
        api.state.api.webhooks.stop()


def login(client: httpx.Client, forwarded: str, username: str = "victim", password: str = "wrong-password") -> httpx.Response:
    return client.post(LOGIN, json={"username": username, "password": password}, headers={"X-Forwarded-For": forwarded})


def test_changing_forwarded_for_from_loopback_does_not_escape_the_login_limit(db, engine) -> None:
    limits = {"rate_limit_ip": "1000/minute", "rate_limit_login": "3/minute", "rate_limit_login_account": "1000/minute"}
    with serve(db, engine, api=limits) as client:
        codes = [login(client, f"198.51.100.{i}", username=f"user{i}").status_code for i in range(15)]
    assert codes[:3] == [401] * 3
    assert codes[3:] == [429] * 12  # every spoofed address is still the loopback client


def test_trusted_proxy_keys_limits_per_forwarded_client_and_locks_the_account(db, engine) -> None:
    limits = {"rate_limit_ip": "1000/minute", "rate_limit_login": "3/minute", "rate_limit_login_account": "5 per 15 minutes"}
    with serve(db, engine, api=limits, trusted_proxies=["127.0.0.1"]) as client:
        # Per forwarded client: 203.0.113.7 is limited, 203.0.113.8 behind the same proxy is not.
        assert [login(client, "203.0.113.7", username=f"u{i}").status_code for i in range(4)] == [401, 401, 401, 429]
        assert login(client, "203.0.113.8", username="u9").status_code == 401
        # Per account, from any address: five wrong passwords lock "victim" out, the right one included.
        assert [login(client, f"192.0.2.{i}").status_code for i in range(5)] == [401] * 5
        locked = login(client, "192.0.2.50", password=PASSWORD)
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 14 * 60
        assert locked.json()["detail"] == "Trop de tentatives de connexion… réessayez dans 15 minutes."
        assert login(client, "192.0.2.51", username="someone-else").status_code == 401


@pytest.mark.parametrize("trusted", [[], ["127.0.0.1"]])
def test_server_options_trust_forwarded_headers_only_from_configured_proxies(trusted) -> None:
    from app import server_options
    from settings import get_settings

    options = server_options(get_settings(trusted_proxies=trusted))
    assert options["proxy_headers"] is bool(trusted)
    assert options["forwarded_allow_ips"] == ",".join(trusted)  # never uvicorn's 127.0.0.1 default
