"""Ticket service: opens, finds and moves tickets, writing an audit event for every change."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from storage.db import Database
from storage.models import Conversation, Message, Ticket, TicketEvent, utcnow
from storage.repositories import NotFoundError, lock_live_ticket, mark_escalated
from tickets import queue
from tickets.domain import (
    FINISHED_STATUSES,
    PRIORITY_LABELS,
    InvalidTransition,
    Priority,
    TicketStatus,
    check_transition,
    sla_due,
    strip_control_chars,
)
from tickets.queue import QueueFilters, QueuePage, TicketDetail

# Qualification categories of the procedure (KB "Qualification et urgence").
QUALIFICATION_CATEGORIES = ("facturation", "technique", "forfait", "résiliation", "réclamation", "général")
MAX_REPLY_CHARS = 4000
# Notices left in the customer's chat (system messages with meta["notice"]).
TAKEN_NOTICE = "👤 Un conseiller a pris en charge votre demande (ticket n° {id}) et vous répond ici même."
RESOLVED_NOTICE = (
    "✅ Votre demande (ticket n° {id}) a été résolue par votre conseiller. Merci de noter notre service "
    "de 1 à 5 ci-dessous. L'assistant reste disponible pour toute autre question."
)
RELEASED_NOTICE = "🤖 Le conseiller a terminé son intervention : l'assistant automatique reprend la conversation."


log = logging.getLogger(__name__)
TOUCHED = "tickets.touched"  # session.info key: ids of the tickets a transaction changed (for the outbox)
# A listener gets ("ticket.created" | "ticket.updated" | "conversation.escalated", ticket) after commit.
TicketListener = Callable[[str, Ticket], None]


def _publishes_update(method):
    """Tell listeners "ticket.updated" once the decorated change is committed."""

    @functools.wraps(method)
    def wrapper(self, ticket_id: int, *args, **kwargs):
        result = method(self, ticket_id, *args, **kwargs)
        if self._listeners:
            self._publish("ticket.updated", result if isinstance(result, Ticket) else self.get(ticket_id))
        return result

    return wrapper


class RatingError(ValueError):
    """A satisfaction rating that cannot be accepted; the message is French, for the customer."""


class TicketService:
    """Business operations on tickets; ``clock`` is injectable so tests can fix the time."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock
        self._listeners: list[TicketListener] = []
        # Transactional outbox hook: called as outbox(session, event, ticket) inside the change's own
        # transaction (the API's webhooks set it), so a change and its announcement commit together.
        self.outbox: Callable[[Session, str, Ticket], None] | None = None

    def subscribe(self, listener: TicketListener) -> None:
        """Call `listener(event, ticket)` after each committed change (webhooks, notifications).

        Listeners run in the thread that made the change; a chat turn's repeated escalation
        ("conversation.escalated") may be published from the server's event loop: a listener stays
        short and hands any I/O to a worker (as the webhooks' ``wake`` does)."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: TicketListener) -> None:
        """Stop calling a listener (e.g. when the API shuts down)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    @contextmanager
    def _tx(self, event: str = "ticket.updated") -> Iterator[Session]:
        """A write transaction whose touched tickets (see ``_add_event``) go to the outbox before commit."""
        with self.db.session() as session:
            yield session
            touched = session.info.pop(TOUCHED, [])
            if self.outbox is not None and touched:
                session.flush()
                for ticket_id in dict.fromkeys(touched):  # loaded by the change: no query, no history
                    self._to_outbox(session, event, session.get(Ticket, ticket_id))

    def _to_outbox(self, session: Session, event: str, ticket: Ticket) -> None:
        if self.outbox is not None:
            self.outbox(session, event, ticket)

    def _publish(self, event: str, ticket: Ticket | None) -> None:
        for listener in self._listeners if ticket is not None else ():
            try:
                listener(event, ticket)
            except Exception:  # a listener never breaks the business operation
                log.exception("ticket listener failed for %s on ticket %s", event, ticket.id)

    def open_ticket(
        self,
        *,
        conversation_id: str | None,
        customer_id: int | None,
        category: str,
        priority: Priority | str,
        summary: str,
        actor: str = "bot",
        source_key: str | None = None,
    ) -> Ticket:
        """Open a ticket for an escalation, or return the conversation's live one.

        A conversation has at most one ticket that is not CLOSED: escalating again returns it,
        raising its priority when the new one is higher, instead of creating a duplicate.
        The conversation goes to ``escalated`` unless an agent already has it. ``source_key``
        (e.g. "mastodon:<status id>") is unique: a second ticket for the same source returns the first.
        """
        priority = Priority(priority)
        category = category.strip()
        if not category:
            raise ValueError("category is empty")
        for attempt in range(2):
            try:
                with self.db.session() as session:
                    ticket, created = self._open_in(
                        session, conversation_id, customer_id, category, priority, summary, actor, source_key
                    )
                    session.flush()
                    ticket = _with_events(session, ticket.id)
                    if created:
                        self._to_outbox(session, "ticket.created", ticket)
                    if conversation_id is not None:
                        self._to_outbox(session, "conversation.escalated", ticket)
                break
            except IntegrityError:
                # A concurrent escalation of the same conversation (or source) created the ticket
                # first (unique indexes); the retry finds and returns it.
                if attempt or (conversation_id is None and source_key is None):
                    raise
        if created:
            self._publish("ticket.created", ticket)
        if conversation_id is not None:
            self._publish("conversation.escalated", ticket)
        return ticket

    def escalate_within(
        self,
        connection: Connection,
        *,
        conversation_id: str,
        customer_id: int | None,
        category: str,
        priority: Priority | str,
        summary: str,
        actor: str = "bot",
    ) -> tuple[Ticket, list[str]]:
        """``open_ticket`` inside the caller's write transaction (a chat turn is stored at once).

        A RESOLVED live ticket goes back to IN_PROGRESS. Returns the ticket and the events the
        caller hands to ``publish`` once its transaction is committed (the outbox gets them now).
        Escalating a conversation whose ticket is already open only writes what is new (a raised
        priority, a reopening): the ticket's history is not read back, so the returned ticket has
        its ``events`` loaded only when it was just created (``get`` gives the full history).

        The usual repeat (the live ticket already at this priority or higher, no outbox to fill)
        runs on the caller's Core connection: a lock on the ticket and one UPDATE, no ORM session
        (in a load test where half the turns escalated, the session cost as much as the rest of
        the turn's storage).
        """
        priority = Priority(priority)
        if self.outbox is None:
            live = lock_live_ticket(connection, conversation_id)
            if self.is_repeat(live, priority):
                mark_escalated(connection, conversation_id)
                return live, ["conversation.escalated"]
        # The session joins the caller's transaction: it flushes into it and leaves the commit to the caller.
        with Session(bind=connection, expire_on_commit=False) as session:
            ticket, created = self._open_in(
                session, conversation_id, customer_id, category.strip() or "général", priority, summary, actor, None
            )
            events = ["ticket.created"] if created else []
            events.append("conversation.escalated")
            if ticket.status == TicketStatus.RESOLVED.value:
                _move(session, ticket, TicketStatus.IN_PROGRESS, actor, self.clock())
                events.append("ticket.updated")
            session.flush()
            for event in events:
                self._to_outbox(session, event, ticket)  # the webhooks carry the ticket's fields, not its history
            session.flush()
        return ticket, events

    @staticmethod
    def new_ticket(category: str, priority: Priority | str, summary: str, now: datetime) -> tuple[dict, str]:
        """A new ticket's columns (open, with its SLA deadline) and the body of its "created" event."""
        priority = Priority(priority)
        values = {"category": category, "priority": priority.value, "status": TicketStatus.OPEN.value, "summary": summary,
                  "created_at": now, "updated_at": now, "sla_due_at": sla_due(now, priority)}  # fmt: skip
        return values, f"Ticket créé ({category}, priorité {PRIORITY_LABELS[priority]})."

    def is_repeat(self, live: Ticket | None, priority: Priority | str) -> bool:
        """Whether escalating at ``priority`` to the conversation's ``live`` ticket only marks the conversation
        escalated: the ticket is open at this priority or higher and no outbox is to be filled."""
        return (self.outbox is None and live is not None and Priority(priority).rank <= Priority(live.priority).rank
                and live.status != TicketStatus.RESOLVED.value)  # fmt: skip

    def publish(self, events: list[str], ticket: Ticket) -> None:
        """Tell listeners about changes committed by an ``escalate_within`` caller."""
        for event in events:
            self._publish(event, ticket)

    def _open_in(
        self,
        session: Session,
        conversation_id: str | None,
        customer_id: int | None,
        category: str,
        priority: Priority,
        summary: str,
        actor: str,
        source_key: str | None = None,
    ) -> tuple[Ticket, bool]:
        """Do the work of ``open_ticket`` inside one session; True when a ticket was created."""
        now = self.clock()
        if source_key is not None:
            existing = session.scalars(select(Ticket).where(Ticket.source_key == source_key)).first()
            if existing is not None:
                return existing, False
        conversation: Conversation | None = None
        if conversation_id is not None:
            existing = session.scalars(
                select(Ticket)
                .where(
                    Ticket.conversation_id == conversation_id,
                    Ticket.status != TicketStatus.CLOSED.value,
                )
                .with_for_update()
            ).first()
            if existing is not None:  # the usual repeat: one UPDATE, which changes nothing once escalated
                mark_escalated(session.connection(), conversation_id)
                self._raise_priority(session, existing, priority, actor, now)
                return existing, False
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise NotFoundError(f"conversation {conversation_id!r} not found")
            if customer_id is None:
                customer_id = conversation.customer_id
            if conversation.status != "agent":
                conversation.status = "escalated"

        values, body = self.new_ticket(category, priority, summary, now)
        ticket = Ticket(conversation_id=conversation_id, customer_id=customer_id, source_key=source_key, **values)
        session.add(ticket)
        session.flush()
        created = _add_event(session, ticket, "created", actor, body, now)
        set_committed_value(ticket, "events", [created])  # its whole history, known without a query
        return ticket, True

    @staticmethod
    def _raise_priority(session: Session, ticket: Ticket, priority: Priority, actor: str, now: datetime) -> None:
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
        with self.db.read() as session:
            return session.scalars(_select_with_events().where(Ticket.id == ticket_id)).first()

    def list_for_customer(self, customer_id: int) -> list[Ticket]:
        """Return a customer's tickets, newest first (what their chat may show them)."""
        with self.db.read() as session:
            stmt = (
                _select_with_events()
                .where(Ticket.customer_id == customer_id)
                .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            )
            return list(session.scalars(stmt))

    def for_conversation(self, conversation_id: str) -> Ticket | None:
        """Return the conversation's live ticket, else its most recent one, else None."""
        with self.db.read() as session:
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

    @_publishes_update
    def transition(self, ticket_id: int, new_status: TicketStatus | str, actor: str) -> Ticket:
        """Move a ticket to ``new_status`` if allowed (else InvalidTransition) and log it."""
        with self._tx() as session:
            ticket = _load_for_update(session, ticket_id)
            _move(session, ticket, new_status, actor, self.clock())
            session.flush()
            return _with_events(session, ticket.id)

    @_publishes_update
    def assign(self, ticket_id: int, assignee: str | None, actor: str) -> Ticket:
        """Give the ticket to ``assignee`` (None to unassign) and log it."""
        with self._tx() as session:
            ticket = _load_for_update(session, ticket_id)
            now = self.clock()
            ticket.assignee = assignee
            ticket.updated_at = now
            body = f"Assigné à {assignee}." if assignee else "Assignation retirée."
            _add_event(session, ticket, "assigned", actor, body, now)
            session.flush()
            return _with_events(session, ticket.id)

    @_publishes_update
    def add_note(self, ticket_id: int, actor: str, body: str) -> TicketEvent:
        """Append an internal note to the ticket's history."""
        body = body.strip()
        if not body:
            raise ValueError("La note est vide.")
        with self._tx() as session:
            ticket = _load_for_update(session, ticket_id)
            now = self.clock()
            ticket.updated_at = now
            return _add_event(session, ticket, "note", actor, body, now)

    @_publishes_update
    def attach_customer(self, ticket_id: int, customer_id: int, actor: str = "client") -> Ticket:
        """Give a ticket opened without a customer (a Mastodon post's) the customer who joined its chat.

        A ticket that already has a customer keeps it; the change is logged for the agents.
        """
        with self._tx() as session:
            ticket = _load_for_update(session, ticket_id)
            if ticket.customer_id is None:
                now = self.clock()
                ticket.customer_id = customer_id
                ticket.updated_at = now
                body = "Le client a rejoint la conversation par son lien personnel et s'est identifié."
                _add_event(session, ticket, "note", actor, body, now)
                session.flush()
            return _with_events(session, ticket.id)

    # --- agent console -------------------------------------------------------------------

    def list_queue(self, filters: QueueFilters) -> QueuePage:
        """One page of the agent queue (filters, sort and paging done in SQL)."""
        with self.db.read() as session:
            return queue.list_queue(session, filters, self.clock())

    def detail(self, ticket_id: int) -> TicketDetail | None:
        """The ticket with its events, customer and full conversation, or None."""
        with self.db.read() as session:
            return queue.ticket_detail(session, ticket_id, self.clock())

    def contact(self, ticket_id: int) -> queue.ConversationContact | None:
        """What the ticket's conversation was opened with, flagged when its phone came with another name."""
        with self.db.read() as session:
            return queue.contact_for_ticket(session, ticket_id)

    def categories(self) -> list[str]:
        """Categories for the queue filter: the procedure's ones plus any used by tickets."""
        with self.db.read() as session:
            return queue.categories(session, QUALIFICATION_CATEGORIES)

    @_publishes_update
    def take(self, ticket_id: int, agent: str) -> Ticket:
        """ "Prendre en charge": assign to ``agent``, move to IN_PROGRESS, stop the bot, tell the customer."""
        with self._tx() as session:
            ticket = _load_for_update(session, ticket_id)
            now = self.clock()
            if TicketStatus(ticket.status) is TicketStatus.CLOSED:
                raise InvalidTransition(ticket.status, TicketStatus.IN_PROGRESS)
            if ticket.assignee != agent:
                ticket.assignee = agent
                _add_event(session, ticket, "assigned", agent, f"Assigné à {agent}.", now)
            if TicketStatus(ticket.status) is not TicketStatus.IN_PROGRESS:
                _move(session, ticket, TicketStatus.IN_PROGRESS, agent, now)
            if _set_conversation_status(session, ticket, "agent"):
                _notify(session, ticket, "taken", TAKEN_NOTICE.format(id=ticket.id))
            ticket.updated_at = now
            session.flush()
            return _with_events(session, ticket.id)

    @_publishes_update
    def reply_to_customer(self, ticket_id: int, agent: str, text: str) -> Message:
        """Post an agent message in the customer's chat; the bot stops answering that conversation.

        Records a "reply" event, assigns an unassigned ticket to ``agent`` and moves an OPEN
        ticket to IN_PROGRESS. Raises ValueError (French message) for an empty or too long
        reply, a closed ticket or a ticket without conversation.
        """
        text = strip_control_chars(text).strip()
        if not text:
            raise ValueError("La réponse est vide.")
        if len(text) > MAX_REPLY_CHARS:
            raise ValueError(f"La réponse est trop longue ({len(text)} caractères, maximum {MAX_REPLY_CHARS}).")
        with self._tx() as session:
            ticket = _load_for_update(session, ticket_id)
            if ticket.conversation_id is None:
                raise ValueError("Ce ticket n'est lié à aucune conversation : impossible de répondre dans le chat.")
            if TicketStatus(ticket.status) is TicketStatus.CLOSED:
                raise ValueError("Ce ticket est fermé : rouvrez-en un nouveau pour répondre.")
            now = self.clock()
            message = Message(
                conversation_id=ticket.conversation_id,
                role="agent",
                content=text,
                meta={"ticket_id": ticket.id, "agent": agent},
            )
            session.add(message)
            _set_conversation_status(session, ticket, "agent")
            if ticket.assignee is None:
                ticket.assignee = agent
                _add_event(session, ticket, "assigned", agent, f"Assigné à {agent}.", now)
            if TicketStatus(ticket.status) is TicketStatus.OPEN:
                _move(session, ticket, TicketStatus.IN_PROGRESS, agent, now)
            _add_event(session, ticket, "reply", agent, text, now)
            ticket.updated_at = now
            session.flush()
            return message

    @_publishes_update
    def release(self, ticket_id: int, agent: str) -> Ticket:
        """ "Rendre la main au bot": the assistant answers the conversation again."""
        with self._tx() as session:
            ticket = _load_for_update(session, ticket_id)
            if ticket.conversation_id is None:
                raise ValueError("Ce ticket n'est lié à aucune conversation.")
            now = self.clock()
            if _set_conversation_status(session, ticket, "bot"):
                _notify(session, ticket, "released", RELEASED_NOTICE)
            _add_event(session, ticket, "note", agent, "Conversation rendue à l'assistant automatique.", now)
            ticket.updated_at = now
            session.flush()
            return _with_events(session, ticket.id)

    @_publishes_update
    def set_status(self, ticket_id: int, new_status: TicketStatus | str, agent: str) -> Ticket:
        """Agent status change: like ``transition``, and a resolved ticket goes back to the bot.

        The customer is told when their request is resolved (and is then offered a rating).
        """
        with self._tx() as session:
            ticket = _load_for_update(session, ticket_id)
            target = _move(session, ticket, new_status, agent, self.clock())
            if target in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
                _set_conversation_status(session, ticket, "bot")
            if target is TicketStatus.RESOLVED:
                _notify(session, ticket, "resolved", RESOLVED_NOTICE.format(id=ticket.id))
            session.flush()
            return _with_events(session, ticket.id)

    @_publishes_update
    def rate(self, ticket_id: int, customer_id: int, score: int) -> Ticket:
        """Store the customer's 1-5 satisfaction score: own ticket only, once, after resolution."""
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
            raise RatingError("La note doit être un nombre entier de 1 à 5.")
        with self._tx() as session:
            ticket = session.scalars(select(Ticket).where(Ticket.id == ticket_id).with_for_update()).first()
            if ticket is None or ticket.customer_id != customer_id:
                raise RatingError("Ce ticket n'est pas le vôtre.")
            if ticket.resolved_at is None or TicketStatus(ticket.status) not in FINISHED_STATUSES:
                raise RatingError("Vous pourrez noter notre service une fois votre demande résolue.")
            if ticket.csat is not None:
                raise RatingError("Vous avez déjà noté cette demande, merci !")
            now = self.clock()
            ticket.csat = score
            ticket.updated_at = now
            _add_event(session, ticket, "note", "client", f"Satisfaction client : {score}/5.", now)
            if ticket.conversation_id is not None:  # the conversation keeps the rating too (not pushed back)
                meta = {"ticket_id": ticket.id, "csat": score}
                text = f"⭐ Note de satisfaction du client : {score}/5."
                session.add(Message(conversation_id=ticket.conversation_id, role="system", content=text, meta=meta))
            session.flush()
            return _with_events(session, ticket.id)


def _move(session: Session, ticket: Ticket, new_status: TicketStatus | str, actor: str, now: datetime) -> TicketStatus:
    """Change the status if allowed (else InvalidTransition), keep resolved_at right, log it."""
    current = TicketStatus(ticket.status)
    target = check_transition(current, new_status)
    ticket.status = target.value
    ticket.updated_at = now
    if target is TicketStatus.RESOLVED:
        ticket.resolved_at = now
    elif target is not TicketStatus.CLOSED:
        ticket.resolved_at = None  # reopened: no longer resolved
    _add_event(session, ticket, "status", actor, f"{current} → {target}", now)
    return target


def _set_conversation_status(session: Session, ticket: Ticket, status: str) -> bool:
    """Set who answers the ticket's conversation; True when it changed."""
    if ticket.conversation_id is None:
        return False
    conversation = session.get(Conversation, ticket.conversation_id)
    if conversation is None or conversation.status == status:
        return False
    conversation.status = status
    return True


def _notify(session: Session, ticket: Ticket, notice: str, text: str) -> None:
    """Leave a system notice in the customer's chat (shown by their chat's refresh)."""
    if ticket.conversation_id is not None:
        meta = {"ticket_id": ticket.id, "notice": notice}
        session.add(Message(conversation_id=ticket.conversation_id, role="system", content=text, meta=meta))


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
    session.info.setdefault(TOUCHED, []).append(ticket.id)
    session.add(event)
    session.flush()
    return event
