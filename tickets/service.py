"""Ticket service: opens, finds and moves tickets, writing an audit event for every change."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from storage.db import Database
from storage.models import Conversation, Ticket, TicketEvent, utcnow
from storage.repositories import NotFoundError
from tickets.domain import (
    PRIORITY_LABELS,
    Priority,
    TicketStatus,
    check_transition,
    sla_due,
)


class TicketService:
    """Business operations on tickets; ``clock`` is injectable so tests can fix the time."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    def open_ticket(
        self,
        *,
        conversation_id: str | None,
        customer_id: int | None,
        category: str,
        priority: Priority | str,
        summary: str,
        actor: str = "bot",
    ) -> Ticket:
        """Open a ticket for an escalation, or return the conversation's live one.

        A conversation has at most one ticket that is not CLOSED: escalating again returns it,
        raising its priority when the new one is higher, instead of creating a duplicate.
        The conversation goes to ``escalated`` unless an agent already has it.
        """
        priority = Priority(priority)
        category = category.strip()
        if not category:
            raise ValueError("category is empty")
        for attempt in range(2):
            try:
                with self.db.session() as session:
                    ticket = self._open_in(
                        session, conversation_id, customer_id, category, priority, summary, actor
                    )
                    session.flush()
                    return _with_events(session, ticket.id)
            except IntegrityError:
                # A concurrent escalation of the same conversation created the live ticket
                # first (unique partial index); the retry finds and returns it.
                if attempt or conversation_id is None:
                    raise
        raise AssertionError("unreachable")

    def _open_in(
        self,
        session: Session,
        conversation_id: str | None,
        customer_id: int | None,
        category: str,
        priority: Priority,
        summary: str,
        actor: str,
    ) -> Ticket:
        """Do the work of ``open_ticket`` inside one session."""
        now = self.clock()
        conversation: Conversation | None = None
        if conversation_id is not None:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise NotFoundError(f"conversation {conversation_id!r} not found")
            if customer_id is None:
                customer_id = conversation.customer_id
            if conversation.status != "agent":
                conversation.status = "escalated"
            existing = session.scalars(
                select(Ticket)
                .where(
                    Ticket.conversation_id == conversation_id,
                    Ticket.status != TicketStatus.CLOSED.value,
                )
                .with_for_update()
            ).first()
            if existing is not None:
                self._raise_priority(session, existing, priority, actor, now)
                return existing

        ticket = Ticket(
            conversation_id=conversation_id,
            customer_id=customer_id,
            category=category,
            priority=priority.value,
            status=TicketStatus.OPEN.value,
            summary=summary,
            created_at=now,
            updated_at=now,
            sla_due_at=sla_due(now, priority),
        )
        session.add(ticket)
        session.flush()
        _add_event(
            session,
            ticket,
            "created",
            actor,
            f"Ticket créé ({category}, priorité {PRIORITY_LABELS[priority]}).",
            now,
        )
        return ticket

    @staticmethod
    def _raise_priority(
        session: Session, ticket: Ticket, priority: Priority, actor: str, now: datetime
    ) -> None:
        """Raise a live ticket's priority; its deadline never moves later than before."""
        current = Priority(ticket.priority)
        if priority.rank <= current.rank:
            return
        ticket.priority = priority.value
        ticket.sla_due_at = min(ticket.sla_due_at, sla_due(now, priority))
        ticket.updated_at = now
        _add_event(
            session,
            ticket,
            "note",
            actor,
            f"Priorité relevée : {PRIORITY_LABELS[current]} → {PRIORITY_LABELS[priority]}.",
            now,
        )

    def get(self, ticket_id: int) -> Ticket | None:
        """Return a ticket with its events, or None."""
        with self.db.session() as session:
            return session.scalars(_select_with_events().where(Ticket.id == ticket_id)).first()

    def list_for_customer(self, customer_id: int) -> list[Ticket]:
        """Return a customer's tickets, newest first (what their chat may show them)."""
        with self.db.session() as session:
            stmt = (
                _select_with_events()
                .where(Ticket.customer_id == customer_id)
                .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            )
            return list(session.scalars(stmt))

    def for_conversation(self, conversation_id: str) -> Ticket | None:
        """Return the conversation's live ticket, else its most recent one, else None."""
        with self.db.session() as session:
            stmt = (
                _select_with_events()
                .where(Ticket.conversation_id == conversation_id)
                .order_by(
                    (Ticket.status == TicketStatus.CLOSED.value).asc(),
                    Ticket.created_at.desc(),
                    Ticket.id.desc(),
                )
            )
            return session.scalars(stmt).first()

    def transition(self, ticket_id: int, new_status: TicketStatus | str, actor: str) -> Ticket:
        """Move a ticket to ``new_status`` if allowed (else InvalidTransition) and log it."""
        with self.db.session() as session:
            ticket = _load_for_update(session, ticket_id)
            current = TicketStatus(ticket.status)
            target = check_transition(current, new_status)
            now = self.clock()
            ticket.status = target.value
            ticket.updated_at = now
            if target is TicketStatus.RESOLVED:
                ticket.resolved_at = now
            elif target is not TicketStatus.CLOSED:
                ticket.resolved_at = None  # reopened: no longer resolved
            _add_event(session, ticket, "status", actor, f"{current} → {target}", now)
            session.flush()
            return _with_events(session, ticket.id)

    def assign(self, ticket_id: int, assignee: str | None, actor: str) -> Ticket:
        """Give the ticket to ``assignee`` (None to unassign) and log it."""
        with self.db.session() as session:
            ticket = _load_for_update(session, ticket_id)
            now = self.clock()
            ticket.assignee = assignee
            ticket.updated_at = now
            body = f"Assigné à {assignee}." if assignee else "Assignation retirée."
            _add_event(session, ticket, "assigned", actor, body, now)
            session.flush()
            return _with_events(session, ticket.id)

    def add_note(self, ticket_id: int, actor: str, body: str) -> TicketEvent:
        """Append an internal note to the ticket's history."""
        body = body.strip()
        if not body:
            raise ValueError("La note est vide.")
        with self.db.session() as session:
            ticket = _load_for_update(session, ticket_id)
            now = self.clock()
            ticket.updated_at = now
            return _add_event(session, ticket, "note", actor, body, now)


def _select_with_events() -> Select[Ticket]:
    """Select tickets with their events loaded, so they work after the session closes."""
    return select(Ticket).options(selectinload(Ticket.events))


def _with_events(session: Session, ticket_id: int) -> Ticket:
    """Reload a ticket with its full, ordered event list."""
    stmt = _select_with_events().where(Ticket.id == ticket_id)
    return session.scalars(stmt.execution_options(populate_existing=True)).one()


def _load_for_update(session: Session, ticket_id: int) -> Ticket:
    """Load a ticket, locking its row where the backend supports it, or raise NotFoundError."""
    ticket = session.scalars(select(Ticket).where(Ticket.id == ticket_id).with_for_update()).first()
    if ticket is None:
        raise NotFoundError(f"ticket {ticket_id} not found")
    return ticket


def _add_event(
    session: Session,
    ticket: Ticket,
    kind: str,
    actor: str,
    body: str | None,
    now: datetime,
) -> TicketEvent:
    """Record an audit event on ``ticket``."""
    event = TicketEvent(ticket_id=ticket.id, kind=kind, actor=actor, body=body, created_at=now)
    session.add(event)
    session.flush()
    return event
