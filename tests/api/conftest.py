"""Fixtures of the API tests: the FastAPI app over a temp SQLite DB and the shipped KB, staff accounts."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

SECRET = "test-secret-key-" + "x" * 32
PASSWORD = "correct horse battery"
CUSTOMER = {"full_name": "Amélie Blanc", "phone": "06 55 44 33 22", "email": "amelie@example.fr"}
QUESTION = "Comment télécharger ma facture ?"


def build_api_services(db, engine, **overrides):
    """Services as app.py builds them, over the given DB and answer engine."""
    from rag.chat import ChatService
    from services import Services
    from settings import get_settings
    from social.service import SocialService
    from tickets import TicketService
    from tickets.analytics import AnalyticsService
    from tickets.users import StaffService

    settings = get_settings(database_url=str(db.url), secret_key=SECRET, **overrides)
    tickets = TicketService(db)
    services = Services(
        settings=settings,
        db=db,
        engine=engine,
        tickets=tickets,
        chat=ChatService(db, engine, tickets, max_chars=settings.rag.max_message_chars),
        staff=StaffService(db),
        analytics=AnalyticsService(db),
        social=SocialService(settings.mastodon, db, tickets, public_url=settings.public_url),
    )
    services.ready.set()
    return services


@pytest.fixture
def make_client(db, engine) -> Iterator[Callable[..., TestClient]]:
    """Factory: a TestClient on a fresh API app; keyword args override ``settings.api`` fields."""
    from api import create_api

    clients: list[TestClient] = []

    def make(**api) -> TestClient:
        # Every test client is one address: per-client limits are lifted unless a test sets them.
        lifted = {"rate_limit_ip": "1000/minute", "rate_limit_conversations_client": "1000/hour"}
        services = build_api_services(db, engine, api={**lifted, **api})
        client = TestClient(create_api(services), raise_server_exceptions=False)
        client.services = services
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.app.state.api.webhooks.stop()
        client.close()


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


@pytest.fixture
def staff_tokens(client) -> dict[str, str]:
    """Bearer headers of one active account per role."""
    headers = {}
    for role in ("agent", "trainer", "admin"):
        client.services.staff.create_user(f"{role}1", PASSWORD, role)
        response = client.post("/api/v1/auth/login", json={"username": f"{role}1", "password": PASSWORD})
        assert response.status_code == 200, response.text
        headers[role] = {"Authorization": f"Bearer {response.json()['access_token']}"}
    return headers


def start_chat(client: TestClient, message: str = QUESTION, **info) -> dict:
    """Open a conversation with a first message; returns the JSON reply (with its key)."""
    response = client.post("/api/v1/chat/message", json={"message": message, "user_info": {**CUSTOMER, **info}})
    assert response.status_code == 200, response.text
    return response.json()


class Receiver:
    """A real webhook receiver on loopback: records requests, answers ``fail_first`` 500s first."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def events(self) -> list[str]:
        return [json.loads(r["body"])["event"] for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
