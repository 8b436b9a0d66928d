"""ORM models of MobiliaChat: customers, conversations, tickets, social posts and app state.

The schema itself is created by the Alembic migrations in ``storage/migrations``; these classes
must stay in step with them (``tests/storage/test_db.py`` compares both).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Allowed values of the string "enum" columns; the migrations repeat them in CHECK constraints.
CHANNELS = ("web", "mastodon", "api")
CONVERSATION_STATUSES = ("bot", "escalated", "agent", "closed")
MESSAGE_ROLES = ("user", "assistant", "agent", "system")
TICKET_PRIORITIES = ("LOW", "MEDIUM", "HIGH", "URGENT")
TICKET_STATUSES = ("OPEN", "IN_PROGRESS", "RESOLVED", "CLOSED")
TICKET_EVENT_KINDS = ("created", "status", "assigned", "note", "reply")
URGENCIES = ("LOW", "MEDIUM", "HIGH")
# Reply state machine: none | pending (awaits an agent) -> queued (approved) -> sending (claimed by one
# sender) -> sent; pending -> skipped; sending -> failed | queued (retry). See social/store.py.
REPLY_STATUSES = ("none", "pending", "queued", "sending", "sent", "skipped", "failed")
STAFF_ROLES = ("agent", "trainer", "evaluator", "admin")

# Deterministic constraint names, so migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime (the only kind stored in the DB)."""
    return datetime.now(UTC)


def new_conversation_id() -> str:
    """Return a random 32-hex-char id, unguessable so a link cannot reveal other chats."""
    return uuid.uuid4().hex


def _in(column: str, values: tuple[str, ...]) -> str:
    """Build the SQL of a CHECK constraint restricting ``column`` to ``values``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that only accepts aware values and always returns UTC.

    SQLite keeps no offset, so values are normalised to UTC on write and tagged UTC on read;
    naive datetimes are refused because their meaning is ambiguous.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC before it reaches the database."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime refused, use an aware UTC value: {value!r}")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return stored values as aware UTC datetimes whatever the backend."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base sharing one metadata with a naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class Customer(Base):
    """A person who filled the contact form; one row per E.164 phone number."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    full_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(20), unique=True, index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"Customer(id={self.id!r})"  # no personal data in logs


class Conversation(Base):
    """A chat thread, from the web form, a Mastodon contact link or the HTTP API."""

    __tablename__ = "conversations"
    __table_args__ = (
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        CheckConstraint(_in("status", CONVERSATION_STATUSES), name="status"),
        Index("ix_conversations_created_at_id", "created_at", "id"),  # analytics, covering
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_conversation_id)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    channel: Mapped[str] = mapped_column(String(16), default="web")
    status: Mapped[str] = mapped_column(String(16), default="bot")
    context: Mapped[dict[str, Any] | None]
    # The contact form as given for this conversation (the customer row keeps the first one).
    contact_name: Mapped[str | None] = mapped_column(String(200))
    contact_phone: Mapped[str | None] = mapped_column(String(20), index=True)
    contact_email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    customer: Mapped[Customer | None] = relationship()


class Message(Base):
    """One chat turn; ``meta`` keeps sources, intent, confidence and latency for analytics."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_in("role", MESSAGE_ROLES), name="role"),
        Index("ix_messages_role_created_at", "role", "created_at"),  # analytics
        # a turn's window: the latest messages of one conversation, read backwards without a sort
        Index("ix_messages_conversation_id_created_at_id", "conversation_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    # None is SQL NULL (not JSON 'null'), whether or not the row that inserts it names the column.
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Feedback(Base):
    """A thumbs up/down on an assistant message; one per message, a new vote replaces it."""

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("message_id"),
        CheckConstraint("rating IN (1, -1)", name="rating"),
        Index("ix_feedback_conversation_id_rating", "conversation_id", "rating"),  # analytics
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Ticket(Base):
    """A support case handled by agents, with its SLA deadline and customer satisfaction."""

    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(_in("priority", TICKET_PRIORITIES), name="priority"),
        CheckConstraint(_in("status", TICKET_STATUSES), name="status"),
        CheckConstraint("csat IS NULL OR csat BETWEEN 1 AND 5", name="csat"),
        # At most one live (not CLOSED) ticket per conversation: backs open_ticket idempotency.
        Index(
            "uq_tickets_live_conversation",
            "conversation_id",
            unique=True,
            sqlite_where=text("status != 'CLOSED'"),
            postgresql_where=text("status != 'CLOSED'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    category: Mapped[str] = mapped_column(String(64))
    priority: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), default="OPEN", index=True)
    assignee: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(Text)
    resolution_notes: Mapped[str | None] = mapped_column(Text)
    csat: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    resolved_at: Mapped[datetime | None]
    sla_due_at: Mapped[datetime]
    # Idempotency key of the ticket's origin (e.g. "mastodon:<status id>"): one ticket per source.
    source_key: Mapped[str | None] = mapped_column(String(80), unique=True)

    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket",
        order_by="TicketEvent.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class TicketEvent(Base):
    """Audit-trail entry of a ticket: creation, status change, assignment, note or reply."""

    __tablename__ = "ticket_events"
    __table_args__ = (CheckConstraint(_in("kind", TICKET_EVENT_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="events")


class ContactToken(Base):
    """Link token sent in a Mastodon reply: single use, then bound to the first browser; stored hashed."""

    __tablename__ = "contact_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    context: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    # SHA-256 of the secret kept by the browser that first used the link (it alone may resume).
    binding_hash: Mapped[str | None] = mapped_column(String(64))


class MastodonPost(Base):
    """A monitored Mastodon status with its complaint scoring and our reply state."""

    __tablename__ = "mastodon_posts"
    __table_args__ = (
        UniqueConstraint("status_id"),
        CheckConstraint(f"urgency IS NULL OR {_in('urgency', URGENCIES)}", name="urgency"),
        CheckConstraint(_in("reply_status", REPLY_STATUSES), name="reply_status"),
        # DB-level guards against a double reply: "sent" needs our reply's id, and one reply
        # status cannot be recorded for two posts.
        CheckConstraint("reply_status != 'sent' OR reply_status_id IS NOT NULL", name="sent_has_reply_id"),
        UniqueConstraint("reply_status_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status_id: Mapped[str] = mapped_column(String(64))
    account: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(String(1024))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)
    is_complaint: Mapped[bool] = mapped_column(Boolean, default=False)
    complaint_score: Mapped[float] = mapped_column(Float, default=0.0)
    urgency: Mapped[str | None] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text, default="")
    reply_status: Mapped[str] = mapped_column(String(16), default="none", index=True)
    reply_text: Mapped[str | None] = mapped_column(Text)
    reply_status_id: Mapped[str | None] = mapped_column(String(64))
    reply_error: Mapped[str | None] = mapped_column(Text)
    reply_updated_at: Mapped[datetime | None]
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    # The one conversation of this post: its ticket's, or the one its contact link opened.
    conversation_id: Mapped[str | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))


class StaffUser(Base):
    """An agent, trainer or admin account for the staff tabs (password stored hashed)."""

    __tablename__ = "staff_users"
    __table_args__ = (
        UniqueConstraint("username"),
        CheckConstraint(_in("role", STAFF_ROLES), name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"StaffUser(id={self.id!r}, username={self.username!r}, role={self.role!r})"


class AppState(Base):
    """Small key/value store for process state that must survive restarts (last seen ids)."""

    __tablename__ = "app_state"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


WEBHOOK_EVENTS = ("ticket.created", "ticket.updated", "conversation.escalated")
WEBHOOK_STATUSES = ("pending", "delivered", "failed")


class WebhookDelivery(Base):
    """One signed webhook to one URL, with its delivery outcome (the API's delivery log)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_in("event", WEBHOOK_EVENTS), name="event"),
        CheckConstraint(_in("status", WEBHOOK_STATUSES), name="status"),
        Index("ix_webhook_deliveries_status_created_at", "status", "created_at"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(2048))
    payload: Mapped[str] = mapped_column(Text)  # the exact signed body
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    # Outbox: when the next attempt is due, and which replica is sending it until when.
    next_attempt_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None]


class IdempotencyKey(Base):
    """The response of an API call sent with an ``Idempotency-Key``, replayed to a retry with the same key.

    ``scope`` is the conversation id (or ``open:<hash of the phone>`` for a message opening a
    conversation), so keys chosen by different customers never collide. The row is written in the
    same transaction as the messages it answers: a refused or failed call leaves none.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    response: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


KB_KINDS = ("faq", "procedure", "conversation", "pdf")
KB_STATUSES = ("draft", "published", "retired")


class KbEntry(Base):
    """The working copy of one knowledge-base entry; what is served is a published ``KbVersion`` snapshot.

    ``status`` is ``published`` when the entry is as last published, ``draft`` once edited (or
    created, or proposed by an agent) and ``retired`` when it leaves the KB at the next publication.
    """

    __tablename__ = "kb_entries"
    __table_args__ = (
        CheckConstraint(_in("kind", KB_KINDS), name="kind"),
        CheckConstraint(_in("status", KB_STATUSES), name="status"),
        Index("ix_kb_entries_source_position", "source", "position"),
    )

    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="faq")
    title: Mapped[str] = mapped_column(String(300))
    category: Mapped[str] = mapped_column(String(64), default="général")
    answer: Mapped[str] = mapped_column(Text)
    questions: Mapped[list[str]] = mapped_column(JSON, default=list)  # phrasings, the main question first
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    links: Mapped[list[str]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(300), default="")  # file it is exported to (seed layout)
    position: Mapped[int] = mapped_column(Integer, default=0)  # order in the KB (the loaders' order)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    author: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class KbRevision(Base):
    """One change of one KB entry: who, when, what (the entry before and after), for history and restore."""

    __tablename__ = "kb_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[str] = mapped_column(String(160), index=True)
    action: Mapped[str] = mapped_column(String(16))  # import, create, update, retire, restore, propose
    author: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class KbVersion(Base):
    """A published KB: the snapshot of its entries, its index fingerprint and the gate's verdict.

    Which version is served is the ``kb_published`` pointer in ``app_state`` (a stack, for rollback).
    """

    __tablename__ = "kb_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    author: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    fingerprint: Mapped[str] = mapped_column(String(32), default="")
    entries: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    gate: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


REVIEW_SOURCES = ("thumbs_down", "escalation", "gap")
REVIEW_STATUSES = ("approved", "rejected")
REVIEW_DESTINATIONS = ("training", "kb", "both")


class ReviewItem(Base):
    """A reviewer's decision on one review candidate (👎 answer, escalation, gap question); texts redacted.

    ``source_key`` names the candidate (``feedback:<id>``, ``ticket:<id>``, ``gap:<message id>``) and is
    unique: a candidate is reviewed once. Approved items go to the training set, the KB (a draft,
    ``entry_id``) or both.
    """

    __tablename__ = "review_items"
    __table_args__ = (
        CheckConstraint(_in("source", REVIEW_SOURCES), name="source"),
        CheckConstraint(_in("status", REVIEW_STATUSES), name="status"),
        CheckConstraint("destination IS NULL OR " + _in("destination", REVIEW_DESTINATIONS), name="destination"),
        UniqueConstraint("source_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_key: Mapped[str] = mapped_column(String(80))
    source: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(64), default="général")
    question: Mapped[str] = mapped_column(Text)
    bot_answer: Mapped[str | None] = mapped_column(Text)
    details: Mapped[str | None] = mapped_column(Text)  # the customer's comment, or the agent's resolution
    reference_answer: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    destination: Mapped[str | None] = mapped_column(String(16))
    entry_id: Mapped[str | None] = mapped_column(String(160))
    reviewer: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
