"""POST /api/v1/chat/message with Idempotency-Key: retries replay the first answer; refused calls store nothing."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from storage import Conversation, IdempotencyKey, IdempotencyRepository, Message
from storage.models import utcnow
from tests.api.conftest import CUSTOMER, QUESTION

URL = "/api/v1/chat/message"
GUARD_S = 120  # only stops a hang


def _counts(services) -> tuple[int, int, int]:
    with services.db.read() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (Conversation, Message, IdempotencyKey))


def _open(client, key: str | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(URL, json={"message": QUESTION, "user_info": CUSTOMER}, headers=headers)


def test_a_retried_opening_returns_the_first_response_and_stores_nothing_new(client):
    first = _open(client, "open-0001-aaaa")
    assert first.status_code == 200, first.text
    stored = _counts(client.services)
    assert stored == (1, 2, 1)
    again = _open(client, "open-0001-aaaa")
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotency-Replayed"] == "true"
    assert _counts(client.services) == stored
    other = _open(client, "open-0002-bbbb")  # another key is another message
    assert other.json()["conversation_id"] != first.json()["conversation_id"]


def test_a_retried_message_in_a_conversation_is_stored_once(client):
    opened = _open(client).json()
    headers = {"X-Conversation-Key": opened["conversation_key"], "Idempotency-Key": "msg-0001-cccc"}
    body = {"conversation_id": opened["conversation_id"], "message": "Je veux résilier mon forfait"}
    first = client.post(URL, json=body, headers=headers)
    assert first.status_code == 200 and first.json()["ticket_id"] is not None
    stored = _counts(client.services)
    for _ in range(3):
        again = client.post(URL, json=body, headers=headers)
        assert again.json() == first.json()
    assert _counts(client.services) == stored
    reused = client.post(URL, json={**body, "message": "Autre chose"}, headers=headers)
    assert reused.status_code == 422 and "Idempotency-Key" in reused.json()["detail"]
    assert _counts(client.services) == stored
    bad = client.post(URL, json=body, headers={**headers, "Idempotency-Key": "x"})  # too short to be an id
    assert bad.status_code == 422


def test_concurrent_retries_with_one_key_answer_once(client, monkeypatch):
    engine = client.services.engine
    entered, release = threading.Event(), threading.Event()
    original = engine.stream_answer

    def slow(*args, **kwargs):
        entered.set()
        assert release.wait(60)
        yield from original(*args, **kwargs)

    monkeypatch.setattr(engine, "stream_answer", slow)
    responses = []
    threads = [threading.Thread(target=lambda: responses.append(_open(client, "double-click-0001"))) for _ in range(2)]
    threads[0].start()
    assert entered.wait(60)
    threads[1].start()
    release.set()
    for thread in threads:
        thread.join(60)
    assert [r.status_code for r in responses] == [200, 200]
    assert responses[0].json() == responses[1].json()
    assert _counts(client.services) == (1, 2, 1)


def test_refused_messages_store_nothing(make_client, monkeypatch):
    client = make_client(rate_limit_conversation="2/minute")
    opened = _open(client, "open-0003-dddd").json()
    headers = {"X-Conversation-Key": opened["conversation_key"]}
    body = {"conversation_id": opened["conversation_id"], "message": "Comment obtenir mon code RIO ?"}
    assert client.post(URL, json=body, headers=headers).status_code == 200
    stored = _counts(client.services)
    limited = client.post(URL, json=body, headers={**headers, "Idempotency-Key": "limited-0001"})
    assert limited.status_code == 429
    assert _counts(client.services) == stored


def test_a_retry_of_a_stored_message_is_replayed_even_at_the_conversations_limit(make_client):
    """The turn reads the first call's record with its conversation; a retry that the per-conversation
    limit refuses is still answered from that record (the first call was accepted), never with a 429."""
    client = make_client(rate_limit_conversation="2/minute")
    opened = _open(client, "open-0004-eeee").json()
    headers = {"X-Conversation-Key": opened["conversation_key"], "Idempotency-Key": "msg-0004-ffff"}
    body = {"conversation_id": opened["conversation_id"], "message": "Comment obtenir mon code RIO ?"}
    first = client.post(URL, json=body, headers=headers)
    assert first.status_code == 200
    stored = _counts(client.services)
    again = client.post(URL, json=body, headers=headers)  # over 2/minute: answered from the record
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotency-Replayed"] == "true"
    fresh = client.post(URL, json=body, headers={**headers, "Idempotency-Key": "msg-0005-gggg"})
    assert fresh.status_code == 429
    assert _counts(client.services) == stored


def test_a_503_stores_nothing_and_the_retry_stores_once(client, monkeypatch):
    """Before, the customer message and the answer were stored before the ticket: a 503 there kept them."""
    opened = _open(client).json()
    headers = {"X-Conversation-Key": opened["conversation_key"], "Idempotency-Key": "retry-0001-eeee"}
    body = {"conversation_id": opened["conversation_id"], "message": "Je veux résilier mon forfait"}
    stored = _counts(client.services)
    tickets = client.services.tickets
    real = tickets.escalate_within

    def locked(*_args, **_kwargs):
        raise OperationalError("INSERT INTO tickets", {}, Exception("database is locked"))

    monkeypatch.setattr(tickets, "escalate_within", locked)
    failed = client.post(URL, json=body, headers=headers)
    assert failed.status_code == 503
    assert _counts(client.services) == stored
    failed_opening = _open(client, "open-0004-ffff")
    assert failed_opening.status_code == 200  # no escalation: unaffected
    monkeypatch.setattr(tickets, "escalate_within", real)
    retried = client.post(URL, json=body, headers=headers)
    assert retried.status_code == 200 and retried.json()["ticket_id"] is not None
    assert _counts(client.services)[1] == stored[1] + 2 + 3  # the opening's turn, then this one (+ notice)


def test_an_opening_whose_message_fails_leaves_no_conversation(client, monkeypatch):
    stored = _counts(client.services)

    def locked(*_args, **_kwargs):
        raise OperationalError("INSERT INTO messages", {}, Exception("database is locked"))

    monkeypatch.setattr(client.services.chat, "_write_turn", locked)
    assert _open(client, "open-0005-gggg").status_code == 503
    assert _counts(client.services) == stored


def _age(services, key: str, hours: float) -> None:
    """Make the record of ``key`` look stored ``hours`` ago."""
    with services.db.write() as s:
        s.execute(update(IdempotencyKey).where(IdempotencyKey.key == key).values(created_at=utcnow() - timedelta(hours=hours)))


def _kept(services) -> list[str]:
    with services.db.read() as s:
        return sorted(s.scalars(select(IdempotencyKey.key)))


@pytest.mark.all_backends
def test_records_past_the_retention_are_purged_and_their_key_is_then_a_new_message(client):
    for key in ("old-0001-aaaa", "old-0002-bbbb", "new-0003-cccc"):
        assert _open(client, key).status_code == 200
    _age(client.services, "old-0001-aaaa", 25)
    _age(client.services, "old-0002-bbbb", 30)
    purged = IdempotencyRepository(client.services.db).purge(utcnow() - timedelta(hours=24), batch=1)
    assert purged == 2 and _kept(client.services) == ["new-0003-cccc"]
    assert _counts(client.services) == (3, 6, 1)  # the conversations and messages stay
    again = _open(client, "new-0003-cccc")
    assert again.headers["Idempotency-Replayed"] == "true"
    late = _open(client, "old-0001-aaaa")  # past the retention a retry is a new message
    assert late.status_code == 200 and "Idempotency-Replayed" not in late.headers
    assert _counts(client.services) == (4, 8, 2)


@pytest.mark.all_backends
def test_the_server_purges_expired_records_once_started(make_client, monkeypatch):
    import api.idempotency

    monkeypatch.setattr(api.idempotency, "PURGE_FIRST_AFTER_S", 0)  # five minutes after start-up otherwise
    client = make_client(idempotency_retention_hours=2)
    for key in ("old-0004-dddd", "new-0005-eeee"):
        assert _open(client, key).status_code == 200
    _age(client.services, "old-0004-dddd", 3)
    _age(client.services, "new-0005-eeee", 1)
    repository, purged = client.services.chat.idempotency, threading.Event()
    purge = repository.purge

    def purge_and_tell(before):
        try:
            return purge(before)
        finally:
            purged.set()

    monkeypatch.setattr(repository, "purge", purge_and_tell)
    with client:  # the lifespan starts the purge task
        assert purged.wait(GUARD_S)
        assert _kept(client.services) == ["new-0005-eeee"]
