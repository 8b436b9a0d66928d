"""Signed webhooks delivered to a real HTTP receiver on loopback, with retries and a delivery log."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

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


# --- transactional outbox, several replicas ---------------------------------------------------


def _delivered_ids(receiver: Receiver) -> list[str]:
    return [r["headers"]["X-Mobilia-Delivery"] for r in receiver.requests if r is not None]


@pytest.mark.all_backends
def test_two_replicas_deliver_each_event_once(make_client, receiver: Receiver) -> None:
    """Two API processes' workers share one outbox: every row is claimed and sent by exactly one."""
    first = webhook_client(make_client, receiver.url)
    second = webhook_client(make_client, receiver.url)
    headers = agent_headers(first)
    for n in range(12):
        client = (first, second)[n % 2]
        created = client.post("/api/v1/tickets", json={"category": "technique", "summary": f"Panne {n}"},
                              headers=headers)  # fmt: skip
        assert created.status_code == 201
        client.patch(f"/api/v1/tickets/{created.json()['id']}", json={"status": "IN_PROGRESS"}, headers=headers)
    for client in (first, second):
        assert client.app.state.api.webhooks.wait_idle(20)
    rows = deliveries(first)
    assert len(rows) == 24 and {r.status for r in rows} == {"delivered"}
    ids = _delivered_ids(receiver)
    assert sorted(ids) == sorted(str(r.id) for r in rows), "each delivery was sent exactly once"
    assert {r.claimed_by for r in rows} == {None}


def test_the_webhook_is_written_in_the_ticket_change_transaction(make_client, receiver: Receiver) -> None:
    """A change that fails leaves no webhook behind; a committed one always has its row."""
    from tickets.domain import InvalidTransition

    client = webhook_client(make_client, receiver.url)
    webhooks = client.app.state.api.webhooks
    webhooks.stop()  # look at the outbox before anything is sent
    ticket = client.services.tickets.open_ticket(conversation_id=None, customer_id=None, category="technique",
                                                 priority="LOW", summary="x")  # fmt: skip
    assert [(r.event, r.status) for r in deliveries(client)] == [("ticket.created", "pending")]
    with pytest.raises(InvalidTransition):
        client.services.tickets.transition(ticket.id, "OPEN", actor="agent1")  # OPEN -> OPEN is refused
    assert len(deliveries(client)) == 1, "the refused change wrote no webhook"
    client.services.tickets.add_note(ticket.id, "agent1", "Appel client")
    assert [r.event for r in deliveries(client)] == ["ticket.created", "ticket.updated"]

    def broken_outbox(session, event, changed) -> None:
        webhooks.write_ticket(session, event, changed)
        raise RuntimeError("outbox write failed")

    client.services.tickets.outbox = broken_outbox
    with pytest.raises(RuntimeError):
        client.services.tickets.add_note(ticket.id, "agent1", "Note perdue")
    notes = [e.body for e in client.services.tickets.get(ticket.id).events]
    assert "Note perdue" not in notes, "a change whose webhook could not be written is not committed either"
    assert len(deliveries(client)) == 2
    assert receiver.requests == []


def test_retries_survive_a_restart(make_client, receiver: Receiver) -> None:
    """A failed attempt is rescheduled in the row: a restarted worker (or another replica) finishes the job."""
    receiver.fail_first = 1
    client = webhook_client(make_client, receiver.url)
    webhooks = client.app.state.api.webhooks
    webhooks.stop()
    client.services.tickets.open_ticket(conversation_id=None, customer_id=None, category="technique",
                                        priority="LOW", summary="x")  # fmt: skip
    assert webhooks.run_once() == 1  # the first attempt gets a 500
    [row] = deliveries(client)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
    assert row.next_attempt_at is not None and row.claimed_by is None
    restarted = webhook_client(make_client, receiver.url)  # a new process, same database
    assert restarted.app.state.api.webhooks.wait_idle(10)
    [row] = deliveries(client)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 2, 204)
    assert len(set(_delivered_ids(receiver))) == 1 and len(receiver.requests) == 2
