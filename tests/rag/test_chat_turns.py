"""A chat turn is one write transaction: stored whole or not at all; double sends are refused."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from rag.chat import ChatSession, DuplicateMessage, SendGuard
from rag.contact import validate_contact
from storage import Message

JEAN = validate_contact("Jean Dupont", "06 12 34 56 78")


@pytest.fixture
def session(chat_service) -> ChatSession:
    return chat_service.start(JEAN)


def _count_sessions(monkeypatch, db) -> dict[str, int]:
    """Transactions opened, ORM sessions and Core connections alike."""
    counts = {"read": 0, "write": 0}
    for method, kind in (("read", "read"), ("read_connection", "read"), ("write", "write"), ("write_connection", "write")):
        original = getattr(db, method)

        @contextmanager
        def counted(original=original, kind=kind):
            counts[kind] += 1
            with original() as s:
                yield s

        monkeypatch.setattr(db, method, counted)
    return counts


def _stored(db) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(Message))


def test_a_message_is_one_read_and_one_write_transaction(chat_service, session, monkeypatch):
    chat_service.send(session, "Comment télécharger ma facture ?")  # warm
    counts = _count_sessions(monkeypatch, chat_service.db)
    chat_service.send(session, "Comment obtenir mon code RIO ?")
    assert counts == {"read": 1, "write": 1}
    escalated = chat_service.send(session, "Je veux résilier mon forfait")
    assert escalated.ticket is not None and counts["write"] == 2  # ticket and notice in the same transaction


def test_a_failed_escalation_stores_nothing_of_the_turn(chat_service, session, monkeypatch):
    """The old send stored the customer message and the answer before opening the ticket: a 503 kept them."""
    chat_service.send(session, "Comment télécharger ma facture ?")
    before = _stored(chat_service.db)

    def locked(*_args, **_kwargs):
        raise OperationalError("INSERT INTO tickets", {}, Exception("database is locked"))

    monkeypatch.setattr(chat_service.tickets, "escalate_within", locked)
    with pytest.raises(OperationalError):
        chat_service.send(session, "Je veux résilier mon forfait")
    assert _stored(chat_service.db) == before
    assert chat_service.conversations.get(session.conversation_id).status == "bot"


def test_same_text_twice_at_once_is_one_send():
    now = [0.0]
    guard = SendGuard(window_s=2.0, clock=lambda: now[0])
    release = guard.claim("c1", "Bonjour")
    with pytest.raises(DuplicateMessage):
        guard.claim("c1", "Bonjour")  # the second click while the first is answered
    guard.claim("c2", "Bonjour")()  # other conversation: independent
    guard.claim("c1", "Autre chose")()
    release()
    now[0] = 1.0
    with pytest.raises(DuplicateMessage):
        guard.claim("c1", "Bonjour")  # arrived just after a fast (extractive) first send
    now[0] = 3.5
    guard.claim("c1", "Bonjour")(stored=False)  # a real repeat later is accepted; a failed send frees it at once
    guard.claim("c1", "Bonjour")()
