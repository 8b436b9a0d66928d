"""Signed webhooks delivered to a real HTTP receiver on loopback, with retries and a delivery log."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from tests.api.conftest import PASSWORD, Receiver, start_chat

HOOK_SECRET = "whsec-test-0123456789"


def webhook_client(make_client, url: str, **extra):
    return make_client(webhook_urls=[url], webhook_secret=HOOK_SECRET, webhook_backoff_s=0.05, **extra)


def agent_headers(client) -> dict[str, str]:
    client.services.staff.create_user("agent1", PASSWORD, "agent")
    token = client.post("/api/v1/auth/login", json={"username": "agent1", "password": PASSWORD}).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


def deliveries(client):
    from sqlalchemy import select

    from storage.models import WebhookDelivery

    with client.services.db.session() as s:
        return list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def test_ticket_webhooks_are_signed_and_retried_until_delivered(make_client, receiver: Receiver) -> None:
    receiver.fail_first = 2
    client = webhook_client(make_client, receiver.url)
    headers = agent_headers(client)
    created = client.post("/api/v1/tickets", json={"category": "technique", "summary": "Panne réseau"}, headers=headers)
    assert created.status_code == 201
    assert client.app.state.api.webhooks.wait_idle(10)

    assert len(receiver.requests) == 3  # two 500s, then 204
    for request in receiver.requests:
        body, sent = request["body"], request["headers"]
        expected = "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert sent["X-Mobilia-Signature"] == expected
        payload = json.loads(body)
        assert sent["X-Mobilia-Timestamp"] == str(payload["timestamp"])
        assert abs(payload["timestamp"] - time.time()) < 60
        assert payload["event"] == "ticket.created" and payload["data"]["ticket"]["id"] == created.json()["id"]
    [row] = deliveries(client)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 3, 204)
    assert row.delivered_at is not None

    client.patch(f"/api/v1/tickets/{created.json()['id']}", json={"status": "IN_PROGRESS"}, headers=headers)
    assert client.app.state.api.webhooks.wait_idle(10)
    assert receiver.events()[-1] == "ticket.updated"


def test_escalation_sends_ticket_created_and_conversation_escalated(make_client, receiver: Receiver) -> None:
    client = webhook_client(make_client, receiver.url)
    body = start_chat(client, message="Je veux parler à un conseiller humain, c'est urgent, je porte plainte !")
    assert body["needs_escalation"]
    assert client.app.state.api.webhooks.wait_idle(10)
    assert receiver.events() == ["ticket.created", "conversation.escalated"]
    escalated = json.loads(receiver.requests[1]["body"])["data"]
    assert escalated["conversation_id"] == body["conversation_id"]
    assert "phone" not in json.dumps(escalated) and "Amélie" not in json.dumps(escalated)


def test_a_receiver_that_keeps_failing_is_logged_as_failed(make_client, receiver: Receiver) -> None:
    receiver.fail_first = 100
    client = webhook_client(make_client, receiver.url, webhook_max_attempts=3)
    headers = agent_headers(client)
    client.post("/api/v1/tickets", json={"category": "technique", "summary": "x"}, headers=headers)
    assert client.app.state.api.webhooks.wait_idle(10)
    [row] = deliveries(client)
    assert (row.status, row.attempts, row.last_status_code) == ("failed", 3, 500)


def test_unreachable_url_is_retried_then_failed(make_client) -> None:
    client = webhook_client(make_client, "http://127.0.0.1:9/nothing", webhook_max_attempts=2, webhook_timeout_s=1)
    headers = agent_headers(client)
    assert (
        client.post("/api/v1/tickets", json={"category": "technique", "summary": "x"}, headers=headers).status_code
        == 201
    )
    assert client.app.state.api.webhooks.wait_idle(10)
    [row] = deliveries(client)
    assert row.status == "failed" and row.attempts == 2 and row.last_status_code is None and row.last_error


def test_no_webhook_without_configuration(client, staff_tokens) -> None:
    client.post("/api/v1/tickets", json={"category": "technique", "summary": "x"}, headers=staff_tokens["agent"])
    assert deliveries(client) == []
