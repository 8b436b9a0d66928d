"""Repositories on a migrated database: a SQLite file and a real PostgreSQL (tests/conftest.py `db`)."""

from __future__ import annotations

import re
from datetime import UTC

import pytest
from sqlalchemy import func, select

from storage import (
    AppStateRepository,
    ConversationRepository,
    CustomerRepository,
    Database,
    Feedback,
    FeedbackRepository,
    Message,
    MessageRepository,
    NotFoundError,
    Ticket,
)
from storage.repositories import append_messages, append_turn

pytestmark = pytest.mark.all_backends


@pytest.fixture
def conversation_id(db: Database) -> str:
    return ConversationRepository(db).create().id


# --- customers ---------------------------------------------------------------------------


def test_customers_are_deduplicated_by_phone_and_never_rewritten(db: Database) -> None:
    repo = CustomerRepository(db)
    first = repo.get_or_create("Alice Martin", "+33612345678", "alice@example.fr")
    second = repo.get_or_create("Alice Martin-Durand", "+33612345678")
    other = repo.get_or_create("Bruno Petit", "+33798765432")

    assert second.id == first.id
    assert other.id != first.id
    # Anyone may type this phone number: a later form never rewrites the stored identity.
    intruder = repo.get_or_create("Mallory Intrus", "+33612345678", "mallory@evil.example")
    assert intruder.id == first.id
    stored = repo.get(first.id)
    assert stored is not None
    assert (stored.full_name, stored.email) == ("Alice Martin", "alice@example.fr")
    assert (intruder.full_name, intruder.email) == ("Alice Martin", "alice@example.fr")
    assert stored.created_at.tzinfo is UTC


def test_conversation_keeps_the_contact_it_was_opened_with(db: Database) -> None:
    customer = CustomerRepository(db).get_or_create("Alice Martin", "+33612345678", "alice@example.fr")
    repo = ConversationRepository(db)
    own = repo.create(customer_id=customer.id, contact=("Alice Martin", "+33612345678", "alice@example.fr"))
    other = repo.create(customer_id=customer.id, contact=("Mallory Intrus", "+33612345678", None))
    loaded = repo.get(other.id)
    assert (loaded.contact_name, loaded.contact_phone, loaded.contact_email) == ("Mallory Intrus", "+33612345678", None)
    assert repo.get(own.id).contact_name == "Alice Martin"
    assert repo.create().contact_name is None  # e.g. a Mastodon conversation with no form


@pytest.mark.parametrize("phone", ["0612345678", "+33 6 12 34 56 78", "", "+0612345678"])
def test_customer_phone_must_be_e164(db: Database, phone: str) -> None:
    with pytest.raises(ValueError):
        CustomerRepository(db).get_or_create("Alice Martin", phone)


def test_missing_customer_is_none(db: Database) -> None:
    assert CustomerRepository(db).get(999) is None


# --- conversations -----------------------------------------------------------------------


def test_conversation_ids_are_random_32_hex(db: Database) -> None:
    repo = ConversationRepository(db)
    ids = {repo.create().id for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[0-9a-f]{32}", cid) for cid in ids)


def test_conversation_create_defaults_and_links_customer(db: Database) -> None:
    customer = CustomerRepository(db).get_or_create("Alice Martin", "+33612345678")
    conversation = ConversationRepository(db).create(
        customer_id=customer.id, channel="mastodon", context={"handle": "@alice@mastodon.social"}
    )
    loaded = ConversationRepository(db).get(conversation.id)
    assert loaded is not None
    assert (loaded.customer_id, loaded.channel, loaded.status) == (customer.id, "mastodon", "bot")
    assert loaded.context == {"handle": "@alice@mastodon.social"}


def test_conversation_status_and_context(db: Database, conversation_id: str) -> None:
    repo = ConversationRepository(db)
    assert repo.set_status(conversation_id, "agent").status == "agent"
    repo.update_context(conversation_id, {"handle": "@bob@piaille.fr"})
    repo.update_context(conversation_id, {"post_url": "https://piaille.fr/@bob/1"})
    loaded = repo.get(conversation_id)
    assert loaded is not None
    assert loaded.status == "agent"
    assert loaded.context == {"handle": "@bob@piaille.fr", "post_url": "https://piaille.fr/@bob/1"}


def test_conversation_bad_values_and_missing_ids(db: Database, conversation_id: str) -> None:
    repo = ConversationRepository(db)
    with pytest.raises(ValueError):
        repo.create(channel="fax")
    with pytest.raises(ValueError):
        repo.set_status(conversation_id, "done")
    with pytest.raises(NotFoundError):
        repo.set_status("f" * 32, "closed")
    assert repo.get("f" * 32) is None


# --- messages ----------------------------------------------------------------------------


def test_messages_are_listed_chronologically(db: Database, conversation_id: str) -> None:
    repo = MessageRepository(db)
    before = ConversationRepository(db).get(conversation_id)
    assert before is not None
    contents = ["Bonjour", "Bonjour, que puis-je faire ?", "Ma facture", "Voici..."]
    roles = ["user", "assistant", "user", "assistant"]
    for role, content in zip(roles, contents, strict=True):
        repo.add(conversation_id, role, content, meta={"intent": "facturation"})

    messages = repo.list(conversation_id)
    assert [m.content for m in messages] == contents
    assert [m.role for m in messages] == roles
    assert messages[1].meta == {"intent": "facturation"}
    assert [m.content for m in repo.list(conversation_id, limit=2)] == contents[2:]
    after = ConversationRepository(db).get(conversation_id)
    assert after is not None and after.updated_at >= before.updated_at


def test_messages_of_other_conversations_are_not_listed(db: Database) -> None:
    conversations = ConversationRepository(db)
    messages = MessageRepository(db)
    mine, theirs = conversations.create().id, conversations.create().id
    messages.add(theirs, "user", "secret")
    assert messages.list(mine) == []


def test_message_validation(db: Database, conversation_id: str) -> None:
    repo = MessageRepository(db)
    with pytest.raises(ValueError):
        repo.add(conversation_id, "robot", "Bonjour")
    with pytest.raises(NotFoundError):
        repo.add("0" * 32, "user", "Bonjour")
    message = repo.add(conversation_id, "user", "Bonjour")
    assert repo.get(message.id).content == "Bonjour"  # type: ignore[union-attr]
    assert repo.get(12345) is None


def test_a_chat_turn_is_one_update_and_one_insert(db: Database, conversation_id: str, sql_spy) -> None:
    """append_messages on PostgreSQL: whatever the number of messages, one UPDATE and one INSERT."""
    rows = [{"role": "user", "content": "Ma facture ?"}, {"role": "assistant", "content": "Voici.", "meta": {"a": 1}},
            {"role": "system", "content": "Ticket.", "meta": None}]  # fmt: skip
    with sql_spy() as statements, db.write() as session:
        stored = append_messages(session.connection(), conversation_id, rows)
    statements = [s for s in statements if s != "BEGIN"]
    # PostgreSQL: one round trip for every message. SQLite (in process, no round trip) inserts row by row
    # when the ids must come back in order.
    assert statements == ["UPDATE", "INSERT"] if not db.is_sqlite else ["UPDATE", "INSERT", "INSERT", "INSERT"]
    assert [m.content for m in stored] == ["Ma facture ?", "Voici.", "Ticket."]
    assert stored[0].id < stored[1].id < stored[2].id
    assert [m.id for m in MessageRepository(db).list(conversation_id)] == [m.id for m in stored]
    with db.read() as session:  # no meta, or None: SQL NULL either way (never JSON 'null')
        nulls = session.scalars(select(Message.id).where(Message.meta.is_(None)).order_by(Message.id)).all()
    assert nulls == [stored[0].id, stored[2].id]


def test_recent_messages_come_with_their_conversation_in_one_statement(db: Database, conversation_id: str) -> None:
    repo = MessageRepository(db)
    for n in range(6):
        meta = {"top_entry": f"faq-{n}", "sources": [{"id": f"faq-{n}"}]} if n % 2 else None
        repo.add(conversation_id, "user" if n % 2 == 0 else "assistant", f"m{n}", meta=meta)
    repo.add(conversation_id, "assistant", "m6", meta={"top_entry": None})
    conversation, recent, _replay, _ticket, _stamp = ConversationRepository(db).get_with_recent(conversation_id, limit=5)
    assert conversation is not None and conversation.id == conversation_id and conversation.status == "bot"
    assert [(m.role, m.content, m.top_entry) for m in recent] == [
        ("user", "m2", None), ("assistant", "m3", "faq-3"), ("user", "m4", None), ("assistant", "m5", "faq-5"),
        ("assistant", "m6", None),
    ]
    empty = ConversationRepository(db).create().id
    found, none, _replay, _ticket, _stamp = ConversationRepository(db).get_with_recent(empty, limit=4)
    assert found is not None and found.id == empty and none == []
    assert ConversationRepository(db).get_with_recent("0" * 32, limit=4) == (None, [], None, None, None)


def test_a_turn_reads_the_live_ticket_of_its_conversation_with_it(db: Database, conversation_id: str) -> None:
    """Its id, priority and status (a repeated escalation is then written in one statement); never a closed one."""
    from tickets import TicketService

    conversations, tickets = ConversationRepository(db), TicketService(db)
    MessageRepository(db).add(conversation_id, "user", "Toujours pas de réseau")
    assert conversations.get_with_recent(conversation_id, limit=5).ticket is None
    ticket = tickets.open_ticket(conversation_id=conversation_id, customer_id=None, category="réseau", priority="HIGH",
                                 summary="Panne")  # fmt: skip
    live = conversations.get_with_recent(conversation_id, limit=5).ticket
    assert (live.id, live.priority, live.status, live.conversation_id) == (ticket.id, "HIGH", "OPEN", conversation_id)
    with db.write() as session:
        session.get(Ticket, ticket.id).status = "CLOSED"
    turn = conversations.get_with_recent(conversation_id, limit=5)
    assert turn.ticket is None and [m.content for m in turn.recent] == ["Toujours pas de réseau"]


def test_a_turn_reads_its_window_from_the_index_without_sorting_the_conversation(db: Database) -> None:
    """(conversation_id, created_at, id) is walked backwards and stops at the limit, however long the conversation."""
    if not db.is_sqlite:
        pytest.skip("SQLite's plan: PostgreSQL picks by table statistics")
    from storage.repositories import _statements

    with db.read() as session:
        connection = session.connection()
        compiled = _statements().recent.compile(connection)
        values = {"conversation_id": "a" * 32, "limit": 50}
        params = compiled.construct_params(values)
        args = tuple(params[name] for name in compiled.positiontup)
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", args).all()
    details = [row[-1] for row in plan]
    assert any("ix_messages_conversation_id_created_at_id" in d for d in details), details
    # the only sort left is the final one, over the (at most 50) rows of the window
    assert sum("TEMP B-TREE" in d for d in details) <= 1, details


def test_idempotency_records_are_written_in_the_callers_transaction(db: Database, conversation_id: str) -> None:
    from sqlalchemy.exc import IntegrityError

    from storage import IdempotencyRepository

    repo = IdempotencyRepository(db)
    with db.write() as session:
        repo.record(session.connection(), conversation_id, "key-00001", "h" * 64, conversation_id, {"response": "Voici."})
    first = repo.get(conversation_id, "key-00001")
    assert first is not None and first.response == {"response": "Voici."} and first.created_at.tzinfo is UTC
    assert repo.get(conversation_id, "key-00002") is None
    with pytest.raises(IntegrityError) as taken, db.write() as session:  # the key is taken: the whole turn rolls back
        append_messages(session.connection(), conversation_id, [{"role": "user", "content": "Rejoué"}])
        repo.record(session.connection(), conversation_id, "key-00001", "x" * 64, conversation_id, {"response": "Autre."})
    assert "Autre." not in str(taken.value) and "x" * 64 not in str(taken.value)  # errors reach logs: no values
    assert repo.get(conversation_id, "key-00001").request_hash == "h" * 64  # type: ignore[union-attr]
    assert [m.content for m in MessageRepository(db).list(conversation_id)] == []
    turn = ConversationRepository(db).get_with_recent(conversation_id, limit=5, idempotency=(conversation_id, "key-00001"))
    assert turn.replay is not None and turn.replay.response == {"response": "Voici."}  # read with the turn
    assert ConversationRepository(db).get_with_recent(conversation_id, 5, (conversation_id, "key-00002")).replay is None
    assert ConversationRepository(db).get_with_recent("0" * 32, 5, (conversation_id, "key-00001")).replay is None


def test_a_chat_turn_with_its_idempotency_record_is_one_statement_on_postgresql(
    db: Database, conversation_id: str, sql_spy
) -> None:
    """append_turn: PostgreSQL touches, inserts the messages and the record in one statement, run in autocommit
    (no BEGIN, no COMMIT); a taken key or a missing conversation stores nothing of the turn."""
    from sqlalchemy.exc import IntegrityError

    from storage import IdempotencyRepository

    rows = [{"role": "user", "content": "Ma facture ?"}, {"role": "assistant", "content": "Voici.", "meta": {"a": 1}},
            {"role": "system", "content": "Ticket.", "meta": None}]  # fmt: skip
    record = {"scope": conversation_id, "key": "key-00001", "request_hash": "h" * 64, "response": {"response": "Voici."}}
    with sql_spy() as statements, db.write_statement() as connection:
        stored = append_turn(connection, conversation_id, rows, record)
    if db.is_sqlite:  # in process: the usual statements in the write transaction
        assert statements == ["BEGIN", "UPDATE", "INSERT", "INSERT", "INSERT", "INSERT"]
    else:
        assert statements == ["WITH"]
    assert [m.content for m in stored] == ["Ma facture ?", "Voici.", "Ticket."]
    assert [m.id for m in MessageRepository(db).list(conversation_id)] == [m.id for m in stored]
    assert stored[0].id < stored[1].id < stored[2].id
    with db.read() as session:  # no meta, or None: SQL NULL either way (never JSON 'null')
        nulls = session.scalars(select(Message.id).where(Message.meta.is_(None)).order_by(Message.id)).all()
    assert nulls == [stored[0].id, stored[2].id]
    kept = IdempotencyRepository(db).get(conversation_id, "key-00001")
    assert kept is not None and kept.response == {"response": "Voici."} and kept.conversation_id == conversation_id

    with pytest.raises(IntegrityError), db.write_statement() as connection:  # the key is taken: nothing of it stays
        append_turn(connection, conversation_id, [{"role": "user", "content": "Rejoué"}], {**record, "request_hash": "x" * 64})
    with pytest.raises(NotFoundError), db.write_statement() as connection:
        append_turn(connection, "0" * 32, rows[:2], {**record, "key": "key-00002"})
    assert [m.id for m in MessageRepository(db).list(conversation_id)] == [m.id for m in stored]
    assert IdempotencyRepository(db).get(conversation_id, "key-00001").request_hash == "h" * 64  # type: ignore[union-attr]
    assert IdempotencyRepository(db).get(conversation_id, "key-00002") is None
    with db.write_statement() as connection:  # without a record (no Idempotency-Key), one message (an agent has it)
        alone = append_turn(connection, conversation_id, [{"role": "user", "content": "Bonjour ?"}])
    assert [m.content for m in MessageRepository(db).list(conversation_id)][-1] == "Bonjour ?" and alone[0].id > stored[2].id


# --- feedback ----------------------------------------------------------------------------


def test_feedback_upserts_on_message(db: Database, conversation_id: str) -> None:
    answer = MessageRepository(db).add(conversation_id, "assistant", "Voici la réponse.")
    repo = FeedbackRepository(db)
    first = repo.record(answer.id, conversation_id, 1)
    second = repo.record(answer.id, conversation_id, -1, comment="Pas clair")

    assert second.id == first.id
    assert (second.rating, second.comment) == (-1, "Pas clair")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Feedback)) == 1


def test_feedback_refuses_foreign_or_non_assistant_messages(db: Database, conversation_id: str) -> None:
    messages = MessageRepository(db)
    question = messages.add(conversation_id, "user", "Ma question")
    answer = messages.add(conversation_id, "assistant", "La réponse")
    other_conversation = ConversationRepository(db).create().id
    repo = FeedbackRepository(db)

    with pytest.raises(ValueError, match="belong"):
        repo.record(answer.id, other_conversation, 1)
    with pytest.raises(ValueError, match="assistant"):
        repo.record(question.id, conversation_id, 1)
    with pytest.raises(ValueError, match="belong"):
        repo.record(99999, conversation_id, 1)


@pytest.mark.parametrize("rating", [0, 2, -2, True, 5])
def test_feedback_rating_must_be_plus_or_minus_one(db: Database, conversation_id: str, rating: int) -> None:
    answer = MessageRepository(db).add(conversation_id, "assistant", "La réponse")
    with pytest.raises(ValueError, match="rating"):
        FeedbackRepository(db).record(answer.id, conversation_id, rating)


# --- app state ---------------------------------------------------------------------------


def test_app_state_get_and_set(db: Database) -> None:
    repo = AppStateRepository(db)
    assert repo.get("mastodon.last_id") is None
    assert repo.get("mastodon.last_id", "0") == "0"
    repo.set("mastodon.last_id", "1100")
    repo.set("mastodon.last_id", "1200")
    repo.set("stats", {"runs": [1, 2], "ok": True})
    assert repo.get("mastodon.last_id") == "1200"
    assert repo.get("stats") == {"runs": [1, 2], "ok": True}
