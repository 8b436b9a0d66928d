"""POST /api/v1/chat/message served directly (``api.fastpath``) answers exactly as the FastAPI route does.

Each client is entered (lifespan run), so on PostgreSQL the turns are answered on the event loop as in
production; on SQLite they take the threaded path. Both kinds of client share one database.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import CUSTOMER, QUESTION, build_api_services

URL = "/api/v1/chat/message"
HANDED_OVER = {  # what FastAPI answers itself: headers or body that do not pass the route's validation
    "bad key", "key too long", "bad conversation id", "extra field", "empty message", "too long", "not json",
    "not an object", "not utf-8", "text/plain", "no body",
}
pytestmark = pytest.mark.all_backends


class _CountingRouter:
    """The FastAPI app's router, counting the requests that reach it."""

    def __init__(self, router) -> None:
        self.router = router
        self.paths: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.router(scope, receive, send)

    def __getattr__(self, name):
        return getattr(self.router, name)


@pytest.fixture
def serve(db, engine):
    """Factory: an entered TestClient whose FastAPI router counts the requests it handles."""
    from api import create_api

    clients = []

    def start(**api) -> TestClient:
        lifted = {"rate_limit_ip": "1000/minute", "rate_limit_conversations_client": "1000/hour"}
        services = build_api_services(db, engine, api={**lifted, **api})
        app = create_api(services)
        app.router = _CountingRouter(app.router)  # before the first request builds the middleware stack
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)
        client.app.state.api.webhooks.stop()


def _open(client) -> tuple[str, dict]:
    opened = client.post(URL, json={"message": QUESTION, "user_info": CUSTOMER})
    assert opened.status_code == 200, opened.text
    return opened.json()["conversation_id"], {"X-Conversation-Key": opened.json()["conversation_key"]}


def _requests(conversation_id: str, headers: dict) -> list[tuple[str, dict]]:
    """(name, keyword arguments of ``client.post``): plain messages and every kind of refusal."""
    message = {"conversation_id": conversation_id, "message": "Comment payer ma facture ?"}
    raw = {"headers": {**headers, "Content-Type": "application/json"}}
    return [
        ("plain", {"json": message, "headers": headers}),
        ("keyed", {"json": {**message, "message": "Et par carte ?"}, "headers": {**headers, "Idempotency-Key": "key-0001-aaaa"}}),
        ("replayed", {"json": {**message, "message": "Et par carte ?"}, "headers": {**headers, "Idempotency-Key": "key-0001-aaaa"}}),
        ("key reused", {"json": message, "headers": {**headers, "Idempotency-Key": "key-0001-aaaa"}}),
        ("bad key", {"json": message, "headers": {**headers, "Idempotency-Key": "short"}}),
        ("bearer", {"json": message, "headers": {"Authorization": "Bearer " + headers["X-Conversation-Key"]}}),
        ("no key", {"json": message}),
        ("wrong key", {"json": message, "headers": {"X-Conversation-Key": "x" * 40}}),
        ("key too long", {"json": message, "headers": {"X-Conversation-Key": "x" * 129}}),
        ("unknown conversation", {"json": {**message, "conversation_id": "0" * 32}, "headers": headers}),
        ("bad conversation id", {"json": {**message, "conversation_id": "nope"}, "headers": headers}),
        ("extra field", {"json": {**message, "mood": "fâché"}, "headers": headers}),
        ("empty message", {"json": {**message, "message": ""}, "headers": headers}),
        ("blank message", {"json": {**message, "message": "   "}, "headers": headers}),
        ("too long", {"json": {**message, "message": "a" * 5000}, "headers": headers}),
        ("not json", {"content": b"{conversation_id:", **raw}),
        ("not an object", {"content": b"[1, 2]", **raw}),
        ("not utf-8", {"content": b'{"message": "\xff"}', **raw}),
        ("text/plain", {"content": b"bonjour", "headers": {**headers, "Content-Type": "text/plain"}}),
        ("no body", {"headers": headers}),
    ]


def _comparable(response) -> tuple:
    body = response.json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("conversation_id", "conversation_key")}
        # Each client's conversation has its own ticket (the two share the database).
        body["ticket_id"] = body.get("ticket_id") is not None
        body["notice"] = re.sub(r"n° \d+", "n° N", body.get("notice") or "")
    replayed = response.headers.get("idempotency-replayed")
    return response.status_code, body, replayed, response.headers.get("retry-after")


def test_every_request_gets_the_routes_response_and_plain_ones_skip_fastapi(serve):
    direct, routed = serve(), serve(direct_chat_route=False)
    results = {}
    for name, client in (("direct", direct), ("routed", routed)):
        conversation_id, headers = _open(client)
        before = len(client.app.router.paths)
        results[name] = [(label, _comparable(client.post(URL, **kwargs))) for label, kwargs in _requests(conversation_id, headers)]
        client.handled = client.app.router.paths[before:]
    assert results["direct"] == results["routed"]
    statuses = dict((label, got[0]) for label, got in results["direct"])
    assert statuses["plain"] == statuses["keyed"] == statuses["replayed"] == statuses["bearer"] == 200
    assert statuses["no key"] == 401 and statuses["wrong key"] == 404 == statuses["unknown conversation"]
    assert {statuses[label] for label in ("bad key", "key too long", "extra field", "not json", "no body")} == {422}
    # Requests of the plain shape were served without FastAPI (refusals by the route's work included); the
    # others were handed to it, their body replayed.
    assert len(routed.handled) == len(results["routed"])
    assert len(direct.handled) == len(HANDED_OVER) and {label for label, _ in results["direct"]} > HANDED_OVER


def test_the_per_ip_limit_counts_each_request_once_whichever_way_it_is_served(serve):
    for client in (serve(rate_limit_ip="4/minute"), serve(rate_limit_ip="4/minute", direct_chat_route=False)):
        conversation_id, headers = _open(client)  # 1
        message = {"conversation_id": conversation_id, "message": "Bonjour"}
        assert client.post(URL, json=message, headers=headers).status_code == 200  # 2 (served directly)
        assert client.post(URL, json={**message, "x": 1}, headers=headers).status_code == 422  # 3 (handed over)
        assert client.post(URL, json=message, headers=headers).status_code == 200  # 4
        limited = client.post(URL, json=message, headers=headers)
        assert limited.status_code == 429 and limited.headers["Retry-After"]


def test_an_oversized_body_is_still_refused_before_it_is_read(serve):
    client = serve(max_body_bytes=1024)
    response = client.post(URL, content=b"{" + b" " * 2000 + b"}", headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and client.app.router.paths == []
