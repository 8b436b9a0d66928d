"""Abuse of the real app (`python app.py`) from one loopback client (issue 12, findings 3, 4 and 9).

The app runs with the default trust settings (no trusted proxy) and small limits: chat floods and
conversation openings through gradio_client, wrong staff passwords through the Gradio login event
(raw queue calls, as the browser sends them: that event is not in the public API), spoofed
X-Forwarded-For on the API, and an upload over the size limit.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import httpx
import pytest
from gradio_client import Client

from bench.live import RawGradio
from settings import ROOT
from tests.e2e.conftest import start_app

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

MESSAGES_PER_CONVERSATION = 5
CONVERSATIONS_PER_CLIENT = 4
LOGINS_PER_CLIENT = 10
PASSWORD = "correct horse battery"
LOCKED_OUT = "Trop de tentatives de connexion… réessayez dans "
LIMITS = {
    "MOBILIA_API__RATE_LIMIT_CONVERSATION": f"{MESSAGES_PER_CONVERSATION}/minute",
    "MOBILIA_API__RATE_LIMIT_CONVERSATIONS_CLIENT": f"{CONVERSATIONS_PER_CLIENT}/hour",
    "MOBILIA_API__RATE_LIMIT_LOGIN": f"{LOGINS_PER_CLIENT}/minute",
    "MOBILIA_API__RATE_LIMIT_LOGIN_ACCOUNT": "10 per 15 minutes",
    "MOBILIA_MAX_UPLOAD_MB": "1",
}


@pytest.fixture(scope="module")
def guarded_app(tmp_path_factory, shipped_config):
    """The app with small limits and no trusted proxy (the default), shared by this module's attacks."""
    env = {**LIMITS, "MOBILIA_TRUSTED_PROXIES": ""}
    with start_app(tmp_path_factory.mktemp("guarded_app"), shipped_config, env) as app:
        yield app


def value(output) -> str:
    """Text of a component output (a plain value or an update dict)."""
    return output.get("value", "") if isinstance(output, dict) else (output or "")


def test_flooding_one_conversation_stops_at_the_limit_with_a_french_message(guarded_app) -> None:
    client = Client(guarded_app.url, verbose=False)
    try:
        history, errors = client.predict("Flora Flood", "06 10 20 30 40", "", api_name="/start_chat")
        assert errors["visible"] is False
        statuses = []
        for i in range(MESSAGES_PER_CONVERSATION + 4):
            history, message, status = client.predict(f"Message numéro {i} : ma facture ?", history,
                                                      api_name="/send_message")  # fmt: skip
            statuses.append(status)
    finally:
        client.close()
    assert all(not s.startswith("⚠️") for s in statuses[:MESSAGES_PER_CONVERSATION])
    for status in statuses[MESSAGES_PER_CONVERSATION:]:
        assert status.startswith("⚠️ Vous envoyez trop de messages : merci de patienter "), status
    assert message.startswith("Message numéro")  # the refused text stays in the box
    stored = guarded_app.query(
        "SELECT m.content FROM messages m JOIN conversations c ON c.id = m.conversation_id "
        "JOIN customers u ON u.id = c.customer_id WHERE u.phone = '+33610203040' AND m.role = 'user'"
    )
    assert len(stored) == MESSAGES_PER_CONVERSATION


def login_attempts(raw: RawGradio, username: str, password: str, count: int) -> list[str]:
    """Messages of ``count`` staff logins through the Gradio login event (one browser session)."""
    event, session = raw.event("staff-login-btn"), uuid.uuid4().hex
    outputs = [raw.call(event, [username, password], session) for _ in range(count)]
    assert all("Connecté" not in value(out[3]) for out in outputs)  # `who` stays empty: nobody logged in
    return [value(out[4]) for out in outputs]


def test_wrong_staff_passwords_in_the_ui_lock_the_client_out(guarded_app) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tickets.users", "--db", guarded_app.db_url, "create", "--username", "agent.lock",
         "--role", "agent"],
        input=PASSWORD + "\n", capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    raw = RawGradio(guarded_app.url)
    try:
        messages = login_attempts(raw, "agent.lock", "wrong password", 30)
        wrong = [m for m in messages if m == "⚠️ Identifiant ou mot de passe incorrect."]
        locked = [m for m in messages if m.startswith(f"🔒 {LOCKED_OUT}")]
        assert len(wrong) <= LOGINS_PER_CLIENT and len(wrong) + len(locked) == 30
        assert messages[-1].endswith(" minute.") or messages[-1].endswith(" minutes."), messages[-1]
        # The right password is refused too while the lock-out lasts.
        assert login_attempts(raw, "agent.lock", PASSWORD, 1)[0].startswith(f"🔒 {LOCKED_OUT}")
    finally:
        raw.close()
    # One limiter for the UI and the API: the API login from the same client is refused as well.
    api = httpx.post(f"{guarded_app.url}api/v1/auth/login", json={"username": "agent.lock", "password": PASSWORD},
                     timeout=30)  # fmt: skip
    assert api.status_code == 429 and api.json()["detail"].startswith(LOCKED_OUT)


def test_spoofed_forwarded_for_does_not_reset_the_api_login_limit(guarded_app) -> None:
    codes = []
    with httpx.Client(base_url=f"{guarded_app.url}api/v1/", timeout=30) as http:
        for i in range(LOGINS_PER_CLIENT + 12):
            response = http.post("auth/login", json={"username": f"spoof{i}", "password": "x"},
                                 headers={"X-Forwarded-For": f"198.51.100.{i}"})  # fmt: skip
            codes.append(response.status_code)
    assert set(codes) <= {401, 429} and codes.count(401) <= LOGINS_PER_CLIENT
    first_refusal = codes.index(429)
    assert codes[first_refusal:] == [429] * (len(codes) - first_refusal)  # a new address never lifts it


def test_upload_over_the_size_limit_is_refused(guarded_app) -> None:
    with httpx.Client(base_url=guarded_app.url, timeout=60) as http:
        small = http.post("gradio_api/upload", files={"files": ("small.txt", b"x" * 1024, "text/plain")})
        assert small.status_code == 200, small.text
        big = http.post("gradio_api/upload", files={"files": ("big.bin", b"x" * (1024 * 1024 + 1), "application/octet-stream")})
    assert big.status_code == 413, big.text


def test_opening_conversations_stops_at_the_per_client_limit(guarded_app) -> None:
    """Last in the module: it spends the loopback client's conversation quota."""
    opened_before = guarded_app.count("conversations")
    client = Client(guarded_app.url, verbose=False)
    try:
        results = [client.predict(f"Client Numéro {chr(65 + i)}", f"07 00 00 00 {i:02d}", "", api_name="/start_chat")
                   for i in range(CONVERSATIONS_PER_CLIENT + 3)]  # fmt: skip
    finally:
        client.close()
    allowed = CONVERSATIONS_PER_CLIENT - opened_before
    assert all(errors["visible"] is False for _, errors in results[:allowed])
    for history, errors in results[allowed:]:
        assert history == [] and errors["visible"] is True
        assert errors["value"].startswith("⚠️ Trop de conversations ouvertes depuis votre connexion : réessayez dans ")
    assert guarded_app.count("conversations") == CONVERSATIONS_PER_CLIENT
    refused = [f"+3370000000{i}" for i in range(allowed, CONVERSATIONS_PER_CLIENT + 3)]
    assert guarded_app.count("customers", f"phone IN ({','.join('?' * len(refused))})", tuple(refused)) == 0
