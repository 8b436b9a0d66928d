"""Rate limits (429 + Retry-After) and an unavailable database (brief retries, then 503 + Retry-After)."""

from __future__ import annotations

import sqlite3

import pytest

from tests.api.conftest import CUSTOMER, start_chat

URL = "/api/v1/chat/message"


def test_per_conversation_limit_is_429_with_retry_after_and_stores_nothing(make_client) -> None:
    client = make_client(rate_limit_conversation="2/minute")
    first = start_chat(client)
    headers = {"X-Conversation-Key": first["conversation_key"]}
    body = {"message": "Et le roaming ?", "conversation_id": first["conversation_id"]}
    assert client.post(URL, json=body, headers=headers).status_code == 200
    limited = client.post(URL, json={**body, "message": "troisième"}, headers=headers)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert "patienter" in limited.json()["detail"]
    contents = [m.content for m in client.services.chat.messages.list(first["conversation_id"])]
    assert "troisième" not in contents
    # another conversation is not affected
    assert start_chat(client, full_name="Bruno Martin", phone="0611223344")["response"]


def test_per_ip_limit_covers_every_api_call_but_health(make_client) -> None:
    client = make_client(rate_limit_ip="3/minute")
    for _ in range(3):
        assert client.get("/api/v1/tickets").status_code == 401
    limited = client.get("/api/v1/tickets")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert client.post(URL, json={"message": "x", "user_info": CUSTOMER}).status_code == 429
    assert client.get("/api/v1/health").status_code == 200


def test_login_attempts_are_limited(make_client) -> None:
    client = make_client(rate_limit_login="2/minute")
    for _ in range(2):
        assert client.post("/api/v1/auth/login", json={"username": "x", "password": "y"}).status_code == 401
    assert client.post("/api/v1/auth/login", json={"username": "x", "password": "y"}).status_code == 429


def test_conversations_opened_per_client_are_limited_before_anything_is_stored(make_client) -> None:
    client = make_client(rate_limit_conversations_client="2/hour")
    for phone in ("0611111111", "0622222222"):
        start_chat(client, phone=phone)
    limited = client.post(URL, json={"message": "Bonjour", "user_info": {**CUSTOMER, "phone": "0633333333"}})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 59 * 60
    assert limited.json()["detail"].startswith("Trop de conversations ouvertes depuis votre connexion")
    with client.services.db.session() as s:
        assert s.execute(sqlite3_count("conversations")).scalar() == 2
        assert s.execute(sqlite3_count("customers")).scalar() == 2


def test_api_and_ui_share_one_limiter(make_client) -> None:
    client = make_client(rate_limit_login="2/minute")
    assert client.app.state.api.limits is client.services.limits  # the one the Gradio callbacks use
    client.services.limits.login("testclient", "someone")  # e.g. two attempts in the Gradio staff tab
    client.services.limits.login("testclient", "someone")
    refused = client.post("/api/v1/auth/login", json={"username": "x", "password": "y"})
    assert refused.status_code == 429 and "Trop de tentatives de connexion" in refused.json()["detail"]


@pytest.fixture
def quick_lock_db(tmp_path, monkeypatch):
    """A migrated SQLite file whose connections wait only 100 ms on a lock."""
    import storage.db
    from storage import Database

    pragmas = tuple(p if "busy_timeout" not in p else "PRAGMA busy_timeout=100" for p in storage.db.SQLITE_PRAGMAS)
    monkeypatch.setattr(storage.db, "SQLITE_PRAGMAS", pragmas)
    database = Database(f"sqlite:///{tmp_path / 'locked.db'}")
    database.migrate()
    yield database, tmp_path / "locked.db"
    database.dispose()


def test_locked_database_is_503_with_retry_after_and_nothing_stored(quick_lock_db, engine, staff_user_factory) -> None:
    from fastapi.testclient import TestClient

    from api import create_api
    from tests.api.conftest import build_api_services

    database, path = quick_lock_db
    services = build_api_services(database, engine, api={"db_retry_attempts": 2})
    headers = staff_user_factory(services)
    client = TestClient(create_api(services), raise_server_exceptions=False)
    locker = sqlite3.connect(path, timeout=0)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        chat = client.post(URL, json={"message": "Ma facture ?", "user_info": CUSTOMER})
        ticket = client.post("/api/v1/tickets", json={"category": "technique", "summary": "x"}, headers=headers)
    finally:
        locker.rollback()
        locker.close()
    for response in (chat, ticket):
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "2"
        assert "indisponible" in response.json()["detail"]
    with database.session() as s:
        assert s.execute(sqlite3_count("customers")).scalar() == 0
        assert s.execute(sqlite3_count("tickets")).scalar() == 0
    assert client.post(URL, json={"message": "Ma facture ?", "user_info": CUSTOMER}).status_code == 200


def sqlite3_count(table: str):
    from sqlalchemy import text

    return text(f"SELECT COUNT(*) FROM {table}")


@pytest.fixture
def staff_user_factory():
    """Create an agent in ``services`` and return bearer headers minted directly (no login call)."""

    def make(services) -> dict[str, str]:
        from api.security import TokenCodec
        from tests.api.conftest import PASSWORD, SECRET

        principal = services.staff.create_user("agent9", PASSWORD, "agent")
        return {"Authorization": f"Bearer {TokenCodec(SECRET).issue(principal)}"}

    return make
