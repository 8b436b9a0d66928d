"""Agent queue read side: filtered, sorted, paginated ticket lists and the full ticket detail.

Filtering, sorting, counting and paging all happen in SQL, so the queue stays fast however
many tickets the database holds; only the rows of the requested page reach Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session, selectinload

from storage.models import Conversation, Customer, Message, Ticket, TicketEvent
from tickets.domain import FINISHED_STATUSES, Priority, TicketStatus

SortKey = Literal["sla", "priority", "created"]
UNASSIGNED = "__unassigned__"  # assignee filter value meaning "nobody has it"
MAX_PAGE_SIZE = 100
LIVE_STATUSES = tuple(s.value for s in TicketStatus if s not in FINISHED_STATUSES)


@dataclass(frozen=True)
class QueueFilters:
    """What the agent asked to see; None (or empty) means "any"."""

    status: TicketStatus | str | None = None
    priority: Priority | str | None = None
    category: str | None = None
    assignee: str | None = None  # a username, or UNASSIGNED
    breached: bool = False  # only live tickets past their SLA deadline
    sort: SortKey = "sla"
    descending: bool = False
    page: int = 1
    page_size: int = 20


@dataclass(frozen=True)
class QueueRow:
    """One line of the queue (only what the table shows)."""

    id: int
    status: str
    priority: str
    category: str
    assignee: str | None
    summary: str
    customer_name: str | None
    created_at: datetime
    sla_due_at: datetime
    breached: bool


@dataclass(frozen=True)
class QueuePage:
    """A page of the queue with the total count of matching tickets."""

    rows: list[QueueRow]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        """Number of pages (at least 1, so "page 1 / 1" reads well when empty)."""
        return max(1, math.ceil(self.total / self.page_size))


@dataclass(frozen=True)
class CustomerInfo:
    """Contact details the agent needs to follow up."""

    id: int
    full_name: str
    phone: str
    email: str | None


@dataclass(frozen=True)
class ConversationContact:
    """What a conversation was opened with, and the other names its phone number came with.

    ``other_names`` (the customer record's name, other conversations' names) is not empty when the
    number was used with another name: agents are warned instead of the identities being merged.
    """

    full_name: str
    phone: str
    email: str | None
    other_names: tuple[str, ...] = ()

    @property
    def name_conflict(self) -> bool:
        """True when this phone number was also given with another name."""
        return bool(self.other_names)


@dataclass(frozen=True)
class TicketDetail:
    """Everything the agent console shows about one ticket.

    ``customer`` is the stored customer (first contact of that phone); ``contact`` is what the
    ticket's conversation was opened with.
    """

    ticket: Ticket
    events: list[TicketEvent]
    customer: CustomerInfo | None
    messages: list[Message]
    conversation_status: str | None
    breached: bool
    contact: ConversationContact | None = None


def _priority_rank():
    """SQL expression ranking priorities LOW=0 … URGENT=3."""
    return case({p.value: p.rank for p in Priority}, value=Ticket.priority, else_=-1)


def _breached_clause(now: datetime):
    return Ticket.status.in_(LIVE_STATUSES) & (Ticket.sla_due_at < now)


def _filtered(filters: QueueFilters, now: datetime) -> Select:
    """Ticket rows with the name their conversation was opened with (else the customer's), filtered."""
    name = func.coalesce(Conversation.contact_name, Customer.full_name)
    stmt = (
        select(Ticket, name)
        .outerjoin(Conversation, Conversation.id == Ticket.conversation_id)
        .outerjoin(Customer, Customer.id == Ticket.customer_id)
    )
    if filters.status:
        stmt = stmt.where(Ticket.status == TicketStatus(filters.status).value)
    if filters.priority:
        stmt = stmt.where(Ticket.priority == Priority(filters.priority).value)
    if filters.category:
        stmt = stmt.where(Ticket.category == filters.category)
    if filters.assignee == UNASSIGNED:
        stmt = stmt.where(Ticket.assignee.is_(None))
    elif filters.assignee:
        stmt = stmt.where(Ticket.assignee == filters.assignee)
    if filters.breached:
        stmt = stmt.where(_breached_clause(now))
    return stmt


def _ordered(stmt: Select, sort: SortKey, descending: bool) -> Select:
    """Apply the sort key; ties break by deadline then id so paging is stable."""
    columns = {"sla": Ticket.sla_due_at, "priority": _priority_rank(), "created": Ticket.created_at}
    if sort not in columns:
        raise ValueError(f"unknown sort {sort!r}")
    key = columns[sort]
    # Priority reads naturally most urgent first, the other keys earliest first.
    first_desc = descending != (sort == "priority")
    return stmt.order_by(key.desc() if first_desc else key.asc(), Ticket.sla_due_at.asc(), Ticket.id.asc())


def list_queue(session: Session, filters: QueueFilters, now: datetime) -> QueuePage:
    """Return one page of the queue matching ``filters`` (``now`` decides SLA breaches)."""
    page_size = min(max(1, filters.page_size), MAX_PAGE_SIZE)
    page = max(1, filters.page)
    base = _filtered(filters, now)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    page = min(page, max(1, math.ceil(total / page_size)))
    stmt = _ordered(base, filters.sort, filters.descending).limit(page_size).offset((page - 1) * page_size)
    rows = [
        QueueRow(
            id=t.id,
            status=t.status,
            priority=t.priority,
            category=t.category,
            assignee=t.assignee,
            summary=t.summary,
            customer_name=name,
            created_at=t.created_at,
            sla_due_at=t.sla_due_at,
            breached=t.status in LIVE_STATUSES and now > t.sla_due_at,
        )
        for t, name in session.execute(stmt)
    ]
    return QueuePage(rows=rows, total=total, page=page, page_size=page_size)


def ticket_detail(session: Session, ticket_id: int, now: datetime) -> TicketDetail | None:
    """Return the ticket with its events, customer and whole conversation, or None."""
    ticket = session.scalars(select(Ticket).options(selectinload(Ticket.events)).where(Ticket.id == ticket_id)).first()
    if ticket is None:
        return None
    customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    messages: list[Message] = []
    conversation_status = None
    conversation = None
    if ticket.conversation_id:
        conversation = session.get(Conversation, ticket.conversation_id)
        conversation_status = conversation.status if conversation else None
        messages = list(
            session.scalars(
                select(Message)
                .where(Message.conversation_id == ticket.conversation_id)
                .order_by(Message.created_at, Message.id)
            )
        )
    info = CustomerInfo(customer.id, customer.full_name, customer.phone, customer.email) if customer else None
    breached = ticket.status in LIVE_STATUSES and now > ticket.sla_due_at
    contact = conversation_contact(session, conversation, customer)
    return TicketDetail(ticket, list(ticket.events), info, messages, conversation_status, breached, contact)


def same_name(a: str, b: str) -> bool:
    """Names equal up to case and spacing ("jean  DUPONT" is "Jean Dupont")."""
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())


def conversation_contact(
    session: Session, conversation: Conversation | None, customer: Customer | None = None
) -> ConversationContact | None:
    """The contact a conversation was opened with (else its customer's), with the phone's other names."""
    if conversation is not None and conversation.contact_phone:
        name, phone, email = conversation.contact_name or "", conversation.contact_phone, conversation.contact_email
    elif customer is not None:
        name, phone, email = customer.full_name, customer.phone, customer.email
    else:
        return None
    used = session.scalars(
        select(Conversation.contact_name)
        .where(Conversation.contact_phone == phone, Conversation.contact_name.is_not(None))
        .distinct()
    ).all()
    recorded = session.scalars(select(Customer.full_name).where(Customer.phone == phone)).all()
    others: list[str] = []
    for other in [*recorded, *used]:
        if not same_name(other, name) and not any(same_name(other, seen) for seen in others):
            others.append(other)
    return ConversationContact(name, phone, email, tuple(others))


def contact_for_ticket(session: Session, ticket_id: int) -> ConversationContact | None:
    """The contact of a ticket's conversation (see ``conversation_contact``), or None."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        return None
    conversation = session.get(Conversation, ticket.conversation_id) if ticket.conversation_id else None
    customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    return conversation_contact(session, conversation, customer)


def categories(session: Session, defaults: tuple[str, ...] = ()) -> list[str]:
    """Categories used by tickets, plus ``defaults``, sorted (for the filter dropdown)."""
    used = session.scalars(select(Ticket.category).distinct())
    return sorted({*defaults, *used})
