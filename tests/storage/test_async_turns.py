"""AsyncTurnRepository (PostgreSQL): the chat turn's statements on psycopg's asynchronous connections.

Races the API's per-key lock cannot see (another replica storing the same key, an agent changing the
ticket between a turn's read and its write) are played here directly, each in one event loop."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from storage import (
    AsyncTurnRepository,
    Conversation,
    ConversationRepository,
    Customer,
    Database,
    Message,
    MessageRepository,
    Ticket,
    TicketEvent,
)
from tests.conftest import run_in_new_loop
from tickets import TicketService

GUARD_S = 120  # only stops a hang


@pytest.fixture
def db_backend() -> str:
    return "postgresql"  # skipped where no PostgreSQL is configured


def _run(db: Database, scenario):
    """``scenario(turns)`` in a fresh event loop, on a pool opened (and closed) in that loop."""

    async def main():
        pool = await db.open_async_pool(4)
        try:
            return await asyncio.wait_for(scenario(AsyncTurnRepository(db, pool)), GUARD_S)
        finally:
            await pool.close()

    return run_in_new_loop(main)


def _count(db: Database, model, **where) -> int:
    with db.read() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return session.scalar(query)


def _turn(text: str) -> list[dict]:
    return [{"role": "user", "content": text}, {"role": "assistant", "content": "Réponse.", "meta": {"top_entry": "fac-012"}}]


def test_the_read_is_the_threaded_repositorys_and_a_turn_is_stored_in_order(db: Database) -> None:
    conversation_id = ConversationRepository(db).create(channel="api").id
    MessageRepository(db).add(conversation_id, "user", "Bonjour")

    async def scenario(turns):
        stored = await turns.append_turn(conversation_id, _turn("Comment payer ma facture ?"))
        return stored, await turns.get_with_recent(conversation_id, 50)

    stored, read = _run(db, scenario)
    assert [m.role for m in stored] == ["user", "assistant"] and stored[0].id < stored[1].id
    assert read.stamp.version and read.stamp.newest_at == stored[1].created_at and not read.stamp.remembered
    assert read._replace(stamp=None) == ConversationRepository(db).get_with_recent(conversation_id, 50)
    assert [(m.role, m.top_entry) for m in read.recent] == [("user", None), ("user", None), ("assistant", "fac-012")]


def test_two_writes_with_one_key_store_one_turn_and_the_other_gets_an_integrity_error(db: Database) -> None:
    """Two replicas answering the same retry at once: their locks are each their own, the database decides."""
    conversation_id = ConversationRepository(db).create(channel="api").id
    record = {"scope": conversation_id, "key": "replica-0001", "request_hash": "h" * 64, "response": {"ok": True}}

    async def scenario(turns):
        return await asyncio.gather(*(turns.append_turn(conversation_id, _turn(f"essai {n}"), record) for n in range(2)),
                                    return_exceptions=True)  # fmt: skip

    results = _run(db, scenario)
    assert sorted(type(r).__name__ for r in results) == ["IntegrityError", "list"]
    assert isinstance(next(r for r in results if not isinstance(r, list)), IntegrityError)
    assert _count(db, Message, conversation_id=conversation_id) == 2  # one turn, nothing of the refused one
    kept = _run(db, lambda turns: turns.idempotency_record(conversation_id, "replica-0001"))
    assert kept.response == {"ok": True}


def test_openings_that_lose_the_race_for_a_new_phone_take_the_winners_customer(db: Database) -> None:
    """An opening's one statement inserts the customer of a new phone: two openings that find no customer while
    another transaction inserts it wait on the unique phone index, fail, and find that customer on their retry."""
    phone = "+33699887766"

    async def scenario(turns):
        async with turns.pool.connection() as first, first.transaction():
            cursor = await first.execute(
                "INSERT INTO customers (full_name, phone, created_at) VALUES ('Premier', %s, now()) RETURNING id", (phone,)
            )
            (customer_id,) = await cursor.fetchone()
            openings = [asyncio.create_task(turns.open_for_contact(("Client", phone, None), "api", 50)) for _ in range(2)]
            async with turns.pool.connection() as watcher:  # the two openings wait on the uncommitted row
                while True:
                    cursor = await watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )
                    if (await cursor.fetchone())[0] == 2:
                        break
                    await asyncio.sleep(0.01)
        return customer_id, await asyncio.gather(*openings)

    customer_id, opened = _run(db, scenario)
    assert [owner for owner, _ in opened] == [customer_id, customer_id]
    assert _count(db, Customer, phone=phone) == 1
    assert len({read.conversation.id for _, read in opened}) == 2
    assert all(_count(db, Conversation, id=read.conversation.id, customer_id=customer_id) == 1 for _, read in opened)
    assert all(read.stamp.remembered and read.recent == [] for _, read in opened)


def test_a_repeat_writes_nothing_when_the_ticket_changed_since_the_read(db: Database) -> None:
    conversation_id = ConversationRepository(db).create(channel="api").id
    tickets = TicketService(db)
    tickets.open_ticket(conversation_id=conversation_id, customer_id=None, category="réseau", priority="MEDIUM",
                        summary="Panne")  # fmt: skip
    live = ConversationRepository(db).get_with_recent(conversation_id, 50).ticket
    assert live is not None and live.status == "OPEN"

    repeat = _run(db, lambda turns: turns.append_turn(conversation_id, _turn("toujours rien"), repeat=live))
    assert [m.role for m in repeat] == ["user", "assistant"]
    assert ConversationRepository(db).get(conversation_id).status == "escalated"

    with db.write() as session:  # an agent resolves it meanwhile
        session.get(Ticket, live.id).status = "RESOLVED"
    assert _run(db, lambda turns: turns.append_turn(conversation_id, _turn("et maintenant ?"), repeat=live)) is None
    assert _count(db, Message, conversation_id=conversation_id) == 2


def test_a_first_ticket_opens_with_its_turn_or_not_at_all(db: Database) -> None:
    conversation_id = ConversationRepository(db).create(channel="api").id
    values, body = TicketService.new_ticket("réseau", "HIGH", "Panne — intention : réseau.", TicketService(db).clock())
    named = []

    def build(ticket):
        named.append(ticket.id)
        return [*_turn("je veux un conseiller"), {"role": "system", "content": f"ticket n° {ticket.id}"}], None

    opened, stored = _run(db, lambda turns: turns.append_turn_opening_ticket(conversation_id, None, values, body, build))
    assert named == [opened.id] and [m.role for m in stored] == ["user", "assistant", "system"]
    ticket = TicketService(db).get(opened.id)
    assert (ticket.status, ticket.priority, ticket.conversation_id) == ("OPEN", "HIGH", conversation_id)
    assert [(e.kind, e.actor, e.body) for e in ticket.events] == [("created", "bot", body)]
    assert ConversationRepository(db).get(conversation_id).status == "escalated"

    # A second opening (a concurrent turn's) is refused by the unique live ticket: nothing of it is written.
    again = _run(db, lambda turns: turns.append_turn_opening_ticket(conversation_id, None, values, body, build))
    assert again is None and named == [opened.id]
    assert _count(db, Ticket, conversation_id=conversation_id) == 1 and _count(db, TicketEvent) == 1
    assert _count(db, Message, conversation_id=conversation_id) == 3


def test_the_pool_hands_out_the_connection_returned_last(db: Database) -> None:
    """The most recently used backend serves the next statement (its caches warm), not the one idle longest."""

    async def main():
        pool = await db.open_async_pool(4)
        try:
            first = await asyncio.wait_for(pool.getconn(), GUARD_S)
            second = await asyncio.wait_for(pool.getconn(), GUARD_S)
            await pool.putconn(second)
            await pool.putconn(first)
            again = await asyncio.wait_for(pool.getconn(), GUARD_S)
            await pool.putconn(again)
            return again is first, again is second
        finally:
            await pool.close()

    assert run_in_new_loop(main) == (True, False)
