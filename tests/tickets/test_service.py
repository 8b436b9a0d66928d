"""TicketService and ticket rules on a migrated SQLite and PostgreSQL database, with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from storage import (
    ConversationRepository,
    CustomerRepository,
    Database,
    NotFoundError,
    Ticket,
)
from storage.models import TICKET_PRIORITIES, TICKET_STATUSES
from tickets import (
    PRIORITY_LABELS,
    STATUS_LABELS,
    InvalidTransition,
    Priority,
    TicketService,
    TicketStatus,
    is_breached,
    sla_due,
)

T0 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC

pytestmark = pytest.mark.all_backends


class Clock:
    """A settable clock passed to the service instead of the wall clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def service(db: Database, clock: Clock) -> TicketService:
    return TicketService(db, clock=clock)


@pytest.fixture
def conversation_id(db: Database) -> str:
    customer = CustomerRepository(db).get_or_create("Alice Martin", "+33612345678")
    return ConversationRepository(db).create(customer_id=customer.id).id


def open_ticket(service: TicketService, conversation_id: str | None, priority: str) -> Ticket:
    return service.open_ticket(
        conversation_id=conversation_id,
        customer_id=None,
        category="facturation",
        priority=priority,
        summary="Le client conteste une facture.",
    )


# --- domain ------------------------------------------------------------------------------


def test_domain_values_match_the_schema() -> None:
    assert tuple(Priority) == TICKET_PRIORITIES
    assert tuple(TicketStatus) == TICKET_STATUSES
    assert list(PRIORITY_LABELS.values()) == ["Basse", "Moyenne", "Haute", "Urgente"]
    assert list(STATUS_LABELS.values()) == ["Ouvert", "En cours", "Résolu", "Fermé"]
    assert Priority("urgent") is Priority.URGENT
    with pytest.raises(ValueError):
        Priority("CRITICAL")


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        ("URGENT", datetime(2025, 3, 10, 10, 0, tzinfo=UTC)),
        ("HIGH", datetime(2025, 3, 10, 13, 0, tzinfo=UTC)),
        ("MEDIUM", datetime(2025, 3, 11, 9, 0, tzinfo=UTC)),
        ("LOW", datetime(2025, 3, 12, 9, 0, tzinfo=UTC)),
    ],
)
def test_sla_due_per_priority(
    service: TicketService, conversation_id: str, priority: str, expected: datetime
) -> None:
    assert sla_due(T0, priority) == expected
    paris = T0.astimezone(timezone(timedelta(hours=1)))  # 10:00+01:00, same instant
    assert sla_due(paris, priority) == expected

    ticket = open_ticket(service, conversation_id, priority)
    assert ticket.created_at == T0
    assert ticket.sla_due_at == expected
    assert service.get(ticket.id).sla_due_at == expected  # type: ignore[union-attr]


def test_sla_due_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError):
        sla_due(datetime(2025, 3, 10, 9, 0), Priority.LOW)


# --- opening -----------------------------------------------------------------------------


def test_open_ticket_creates_event_and_escalates_conversation(
    db: Database, service: TicketService, conversation_id: str
) -> None:
    ticket = open_ticket(service, conversation_id, "MEDIUM")

    assert ticket.status == TicketStatus.OPEN
    assert ticket.priority == Priority.MEDIUM
    assert ticket.customer_id is not None  # taken from the conversation
    assert [(e.kind, e.actor) for e in ticket.events] == [("created", "bot")]
    assert ConversationRepository(db).get(conversation_id).status == "escalated"  # type: ignore[union-attr]


def test_open_ticket_is_idempotent_per_conversation_and_raises_priority(
    db: Database, service: TicketService, clock: Clock, conversation_id: str
) -> None:
    first = open_ticket(service, conversation_id, "MEDIUM")

    clock.advance(hours=1)
    same = open_ticket(service, conversation_id, "LOW")  # lower: nothing changes
    assert same.id == first.id
    assert same.priority == "MEDIUM"
    assert same.sla_due_at == T0 + timedelta(hours=24)
    assert [e.kind for e in same.events] == ["created"]

    clock.advance(hours=1)  # 11:00: raised to URGENT, due at 12:00 (before the 24 h deadline)
    raised = open_ticket(service, conversation_id, "URGENT")
    assert raised.id == first.id
    assert raised.priority == "URGENT"
    assert raised.sla_due_at == datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
    assert [e.kind for e in raised.events] == ["created", "note"]
    assert raised.events[1].body == "Priorité relevée : Moyenne → Urgente."

    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 1


def escalate(db: Database, service: TicketService, conversation_id: str, priority: str) -> tuple[Ticket, list[str]]:
    """A chat turn's escalation: ``escalate_within`` in the turn's own write transaction."""
    with db.write_connection() as connection:
        return service.escalate_within(connection, conversation_id=conversation_id, customer_id=None,
                                       category="facturation", priority=priority, summary="Facture contestée.")  # fmt: skip


def test_escalating_an_open_ticket_appends_only_what_is_new(
    db: Database, service: TicketService, clock: Clock, conversation_id: str
) -> None:
    from sqlalchemy import event

    outbox: list[tuple[str, int, str]] = []
    service.outbox = lambda _session, name, ticket: outbox.append((name, ticket.id, ticket.priority))
    first, events = escalate(db, service, conversation_id, "MEDIUM")
    assert events == ["ticket.created", "conversation.escalated"]
    assert [e.kind for e in first.events] == ["created"]  # a new ticket's whole history, without a query

    statements: list[str] = []

    def spy(_conn, _cursor, statement, *_args) -> None:
        statements.append(" ".join(statement.split()).upper())

    event.listen(db.engine, "before_cursor_execute", spy)
    try:
        clock.advance(hours=1)
        raised, raised_events = escalate(db, service, conversation_id, "URGENT")
        again, again_events = escalate(db, service, conversation_id, "LOW")  # nothing new: no event at all
    finally:
        event.remove(db.engine, "before_cursor_execute", spy)

    assert raised.id == again.id == first.id and raised_events == again_events == ["conversation.escalated"]
    assert not [s for s in statements if s.startswith("SELECT") and "TICKET_EVENTS" in s], "history never read"
    assert sum(s.startswith("INSERT INTO TICKET_EVENTS") for s in statements) == 1  # the priority note only
    history = service.get(first.id)
    assert history is not None and [e.kind for e in history.events] == ["created", "note"]
    assert history.priority == "URGENT" and history.updated_at == T0 + timedelta(hours=1)
    # One outbox entry per event, carrying the ticket as it is now (what the webhooks send).
    assert outbox == [("ticket.created", first.id, "MEDIUM"), ("conversation.escalated", first.id, "MEDIUM"),
                      ("conversation.escalated", first.id, "URGENT"), ("conversation.escalated", first.id, "URGENT")]  # fmt: skip
    assert ConversationRepository(db).get(conversation_id).status == "escalated"  # type: ignore[union-attr]


def test_escalating_an_open_ticket_again_without_webhooks_is_one_lock_and_one_update(
    db: Database, service: TicketService, conversation_id: str, sql_spy
) -> None:
    """The usual repeat (the live ticket already at this priority or higher, no outbox) runs on the turn's Core
    connection: no ORM session, no ticket or conversation loaded through it."""
    first, _ = escalate(db, service, conversation_id, "HIGH")
    with sql_spy() as statements:
        again, events = escalate(db, service, conversation_id, "LOW")
    assert [s for s in statements if s != "BEGIN"] == ["SELECT", "UPDATE"]  # the ticket locked, the conversation marked
    assert again.id == first.id and again.priority == "HIGH" and events == ["conversation.escalated"]
    raised, raised_events = escalate(db, service, conversation_id, "URGENT")  # something new: the full path
    assert raised.id == first.id and raised.priority == "URGENT" and raised_events == ["conversation.escalated"]
    assert [e.kind for e in service.get(first.id).events] == ["created", "note"]  # type: ignore[union-attr]


def test_escalating_again_keeps_an_agent_conversation_and_reopens_a_resolved_ticket(
    db: Database, service: TicketService, conversation_id: str
) -> None:
    first, _ = escalate(db, service, conversation_id, "LOW")
    service.transition(first.id, "IN_PROGRESS", actor="agent.paul")
    ConversationRepository(db).set_status(conversation_id, "agent")
    escalate(db, service, conversation_id, "LOW")
    assert ConversationRepository(db).get(conversation_id).status == "agent"  # type: ignore[union-attr]

    service.transition(first.id, "RESOLVED", actor="agent.paul")
    ConversationRepository(db).set_status(conversation_id, "bot")
    reopened, events = escalate(db, service, conversation_id, "LOW")
    assert reopened.id == first.id and reopened.status == "IN_PROGRESS" and reopened.resolved_at is None
    assert events == ["conversation.escalated", "ticket.updated"]
    assert ConversationRepository(db).get(conversation_id).status == "escalated"  # type: ignore[union-attr]
    assert [e.kind for e in service.get(first.id).events][-1] == "status"  # type: ignore[union-attr]


def test_raised_priority_never_moves_the_deadline_later(
    service: TicketService, clock: Clock, conversation_id: str
) -> None:
    open_ticket(service, conversation_id, "HIGH")  # due 13:00
    clock.advance(hours=3, minutes=30)  # 12:30: URGENT from now would be 13:30
    raised = open_ticket(service, conversation_id, "URGENT")
    assert raised.priority == "URGENT"
    assert raised.sla_due_at == datetime(2025, 3, 10, 13, 0, tzinfo=UTC)


def test_open_ticket_after_close_creates_a_new_one(
    service: TicketService, conversation_id: str
) -> None:
    first = open_ticket(service, conversation_id, "LOW")
    service.transition(first.id, "CLOSED", actor="agent.paul")
    second = open_ticket(service, conversation_id, "LOW")
    assert second.id != first.id
    assert service.for_conversation(conversation_id).id == second.id  # type: ignore[union-attr]


def test_open_ticket_keeps_agent_conversation_with_agent(
    db: Database, service: TicketService, conversation_id: str
) -> None:
    ConversationRepository(db).set_status(conversation_id, "agent")
    open_ticket(service, conversation_id, "HIGH")
    assert ConversationRepository(db).get(conversation_id).status == "agent"  # type: ignore[union-attr]


def test_open_ticket_without_conversation_and_unknown_conversation(
    service: TicketService,
) -> None:
    a = open_ticket(service, None, "LOW")
    b = open_ticket(service, None, "LOW")
    assert a.id != b.id
    with pytest.raises(NotFoundError):
        open_ticket(service, "0" * 32, "LOW")


def test_database_refuses_two_live_tickets_for_one_conversation(
    db: Database, service: TicketService, conversation_id: str
) -> None:
    ticket = open_ticket(service, conversation_id, "LOW")
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(
            Ticket(
                conversation_id=conversation_id,
                category="x",
                priority="LOW",
                status="OPEN",
                summary="doublon",
                sla_due_at=ticket.sla_due_at,
            )
        )


# --- reading -----------------------------------------------------------------------------


def test_lookups(db: Database, service: TicketService, clock: Clock) -> None:
    customers = CustomerRepository(db)
    conversations = ConversationRepository(db)
    alice = customers.get_or_create("Alice Martin", "+33612345678")
    bob = customers.get_or_create("Bruno Petit", "+33798765432")
    c1 = conversations.create(customer_id=alice.id).id
    c2 = conversations.create(customer_id=alice.id).id
    c3 = conversations.create(customer_id=bob.id).id
    t1 = open_ticket(service, c1, "LOW")
    clock.advance(minutes=5)
    t2 = open_ticket(service, c2, "HIGH")
    open_ticket(service, c3, "HIGH")

    assert [t.id for t in service.list_for_customer(alice.id)] == [t2.id, t1.id]
    assert service.for_conversation(c1).id == t1.id  # type: ignore[union-attr]
    assert service.for_conversation(conversations.create().id) is None
    assert service.get(424242) is None


# --- transitions -------------------------------------------------------------------------

ALLOWED = {
    ("OPEN", "IN_PROGRESS"),
    ("OPEN", "RESOLVED"),
    ("OPEN", "CLOSED"),
    ("IN_PROGRESS", "OPEN"),
    ("IN_PROGRESS", "RESOLVED"),
    ("IN_PROGRESS", "CLOSED"),
    ("RESOLVED", "IN_PROGRESS"),
    ("RESOLVED", "CLOSED"),
}
PATH_TO = {
    "OPEN": [],
    "IN_PROGRESS": ["IN_PROGRESS"],
    "RESOLVED": ["RESOLVED"],
    "CLOSED": ["CLOSED"],
}
ALL_PAIRS = [(a, b) for a in TICKET_STATUSES for b in TICKET_STATUSES]


@pytest.mark.parametrize(("source", "target"), sorted(ALLOWED))
def test_allowed_transitions(
    service: TicketService, conversation_id: str, source: str, target: str
) -> None:
    ticket = open_ticket(service, conversation_id, "MEDIUM")
    for step in PATH_TO[source]:
        service.transition(ticket.id, step, actor="agent.paul")

    moved = service.transition(ticket.id, target, actor="agent.lea")
    assert moved.status == target
    last = moved.events[-1]
    assert (last.kind, last.actor, last.body) == ("status", "agent.lea", f"{source} → {target}")


@pytest.mark.parametrize(("source", "target"), [p for p in ALL_PAIRS if p not in ALLOWED])
def test_refused_transitions(
    service: TicketService, conversation_id: str, source: str, target: str
) -> None:
    ticket = open_ticket(service, conversation_id, "MEDIUM")
    for step in PATH_TO[source]:
        service.transition(ticket.id, step, actor="agent.paul")
    before = service.get(ticket.id)
    assert before is not None

    with pytest.raises(InvalidTransition) as error:
        service.transition(ticket.id, target, actor="agent.lea")
    assert str(error.value) == f"Transition impossible : {source} → {target}."
    assert isinstance(error.value, ValueError)
    after = service.get(ticket.id)
    assert after is not None
    assert after.status == source
    assert len(after.events) == len(before.events)


def test_transition_of_missing_ticket(service: TicketService) -> None:
    with pytest.raises(NotFoundError):
        service.transition(404, "CLOSED", actor="agent.paul")


def test_resolved_at_is_set_cleared_on_reopen_and_kept_on_close(
    service: TicketService, clock: Clock, conversation_id: str
) -> None:
    ticket = open_ticket(service, conversation_id, "HIGH")
    assert ticket.resolved_at is None

    clock.advance(hours=2)
    resolved = service.transition(ticket.id, TicketStatus.RESOLVED, actor="agent.paul")
    assert resolved.resolved_at == T0 + timedelta(hours=2)
    assert resolved.updated_at == T0 + timedelta(hours=2)

    reopened = service.transition(ticket.id, TicketStatus.IN_PROGRESS, actor="agent.paul")
    assert reopened.resolved_at is None

    clock.advance(hours=1)
    service.transition(ticket.id, TicketStatus.RESOLVED, actor="agent.paul")
    closed = service.transition(ticket.id, TicketStatus.CLOSED, actor="agent.paul")
    assert closed.resolved_at == T0 + timedelta(hours=3)


def test_events_record_the_whole_history(service: TicketService, conversation_id: str) -> None:
    ticket = open_ticket(service, conversation_id, "LOW")
    service.assign(ticket.id, "agent.paul", actor="admin")
    service.transition(ticket.id, "IN_PROGRESS", actor="agent.paul")
    note = service.add_note(ticket.id, "agent.paul", "  Client rappelé, attend un avoir.  ")
    assert (note.kind, note.body) == ("note", "Client rappelé, attend un avoir.")
    with pytest.raises(ValueError, match="vide"):
        service.add_note(ticket.id, "agent.paul", "   ")

    history = service.get(ticket.id)
    assert history is not None
    assert history.assignee == "agent.paul"
    assert [(e.kind, e.actor) for e in history.events] == [
        ("created", "bot"),
        ("assigned", "admin"),
        ("status", "agent.paul"),
        ("note", "agent.paul"),
    ]
    assert all(e.created_at.tzinfo is UTC for e in history.events)


# --- SLA breach --------------------------------------------------------------------------


def test_breach_flag(service: TicketService, conversation_id: str) -> None:
    ticket = open_ticket(service, conversation_id, "URGENT")  # due 10:00
    due = datetime(2025, 3, 10, 10, 0, tzinfo=UTC)

    assert not is_breached(ticket, due - timedelta(minutes=1))
    assert not is_breached(ticket, due)
    assert is_breached(ticket, due + timedelta(seconds=1))

    in_progress = service.transition(ticket.id, "IN_PROGRESS", actor="agent.paul")
    assert is_breached(in_progress, due + timedelta(hours=5))
    resolved = service.transition(ticket.id, "RESOLVED", actor="agent.paul")
    assert not is_breached(resolved, due + timedelta(hours=5))
    closed = service.transition(ticket.id, "CLOSED", actor="agent.paul")
    assert not is_breached(closed, due + timedelta(hours=5))
