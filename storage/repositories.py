"""Repositories: the only code that reads and writes chat data, one short transaction per call.

Every method opens its own session and returns ORM instances that stay usable after it closes
(sessions do not expire on commit); nothing is lazy-loaded afterwards. The chat turn's read
(``get_with_recent``) and writes (``append_messages``, ``open_for_contact``) use plain rows and
Core statements instead: they run on every message (straight on the DBAPI cursor, see ``_run``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Delete,
    Insert,
    Select,
    Text,
    TextClause,
    Update,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    insert,
    literal_column,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from storage.db import Database
from storage.models import (
    CHANNELS,
    CONVERSATION_STATUSES,
    MESSAGE_ROLES,
    AppState,
    Conversation,
    Customer,
    Feedback,
    IdempotencyKey,
    Message,
    Ticket,
    TicketEvent,
    new_conversation_id,
    utcnow,
)

_KEY_COLUMN = 10  # in the turn's read with an Idempotency-Key: the id of the record stored under it, if any
E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")


class ConversationHead(NamedTuple):
    """What a chat turn needs of its conversation (a plain row, not an ORM instance)."""

    id: str
    customer_id: int | None
    status: str
    context: dict[str, Any] | None


class RecentMessage(NamedTuple):
    """A recent message as a chat turn reads it: the answer's top KB entry instead of its whole ``meta``."""

    role: str
    content: str
    top_entry: str | None


class TurnStamp(NamedTuple):
    """Which state of its conversation a turn's read saw (PostgreSQL's ``AsyncTurnRepository``), so that the turn's
    write can tell whether it is still the current one."""

    version: str  # the conversation row's xmin: every UPDATE of the row (by any writer) gives it another
    newest_at: datetime | None  # the latest message's created_at (None: no message yet)
    window: int  # how many latest messages were read
    remembered: bool = False  # True: the read came from the repository's memory, not from the database


class TurnRead(NamedTuple):
    """What a chat turn reads before answering: its conversation, latest messages and any earlier response
    stored under the call's Idempotency-Key (a retry is answered from it, nothing is computed again)."""

    conversation: ConversationHead | None
    recent: list[RecentMessage]
    replay: IdempotencyKey | None = None
    ticket: Ticket | None = None  # the conversation's live (not CLOSED) ticket: its id, priority and status only
    stamp: TurnStamp | None = None  # PostgreSQL's asynchronous turns only


class StaleTurn(Exception):
    """A turn answered from a remembered read found its conversation changed: nothing was written."""


class NotFoundError(LookupError):
    """Raised when a write targets a row that does not exist."""


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    """Refuse a value outside a column's allowed set before the database does."""
    if value not in allowed:
        raise ValueError(f"invalid {name} {value!r}, expected one of {allowed}")


def _customer_name(full_name: str, phone: str) -> str:
    """The name a new customer is stored with; refuses a phone not in E.164 or an empty name."""
    if not E164_RE.match(phone):
        raise ValueError("phone must be normalised to E.164 (e.g. +33612345678)")
    full_name = full_name.strip()
    if not full_name:
        raise ValueError("full_name is empty")
    return full_name


# The columns an opening writes (``_opening_values``' rows): the threaded opening's statements and the loop's one.
_NEW_CUSTOMER = ("full_name", "phone", "email", "created_at")
_NEW_CONVERSATION = ("id", "channel", "status", "context", "contact_name", "contact_phone", "contact_email",
                     "created_at", "updated_at")  # fmt: skip


def _opening_values(
    contact: tuple[str, str, str | None], channel: str, context: dict[str, Any] | None, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``open_for_contact``'s rows: the customer to create if their phone is new, and the conversation (its
    ``customer_id`` to fill in). Refuses an unknown channel, a phone not in E.164 or an empty name."""
    _check_choice("channel", channel, CHANNELS)
    name, phone, email = contact
    customer = {"full_name": _customer_name(name, phone), "phone": phone, "email": email, "created_at": now}
    conversation = {"id": new_conversation_id(), "customer_id": None, "channel": channel, "status": "bot",
                    "context": context, "contact_name": name, "contact_phone": phone, "contact_email": email,
                    "created_at": now, "updated_at": now}  # fmt: skip
    return customer, conversation


class CustomerRepository:
    """Customers from the contact form, deduplicated by E.164 phone number."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get_or_create(self, full_name: str, phone: str, email: str | None = None) -> Customer:
        """Return the customer with this phone, creating it with this name and e-mail if new.

        An existing customer is returned unchanged: anyone can type any phone number in the contact
        form, so a form never rewrites a stored identity (the conversation keeps what it was given).
        """
        full_name = _customer_name(full_name, phone)
        for attempt in range(2):
            try:
                with self.db.session() as session:
                    customer = session.scalars(
                        select(Customer).where(Customer.phone == phone)
                    ).one_or_none()
                    if customer is None:
                        customer = Customer(full_name=full_name, phone=phone, email=email)
                        session.add(customer)
                        session.flush()
                    return customer
            except IntegrityError:
                if attempt:  # a concurrent insert won twice in a row: give up loudly
                    raise
        raise AssertionError("unreachable")

    def get(self, customer_id: int) -> Customer | None:
        """Return a customer by id, or None."""
        with self.db.read() as session:
            return session.get(Customer, customer_id)


class ConversationRepository:
    """Chat threads; ids are random uuid4 hex so they can travel in URLs and session state."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        customer_id: int | None = None,
        channel: str = "web",
        context: dict[str, Any] | None = None,
        contact: tuple[str, str, str | None] | None = None,
    ) -> Conversation:
        """Start a conversation in ``bot`` status and return it.

        ``contact`` is the (name, E.164 phone, e-mail) the conversation was opened with.
        """
        _check_choice("channel", channel, CHANNELS)
        name, phone, email = contact or (None, None, None)
        with self.db.session() as session:
            conversation = Conversation(
                customer_id=customer_id,
                channel=channel,
                status="bot",
                context=context,
                contact_name=name,
                contact_phone=phone,
                contact_email=email,
            )
            session.add(conversation)
            session.flush()
            return conversation

    def open_for_contact(
        self, contact: tuple[str, str, str | None], channel: str = "web", context: dict[str, Any] | None = None
    ) -> tuple[int, str]:
        """Find (or create) the customer of this (name, E.164 phone, e-mail) and open a conversation for them.

        What ``CustomerRepository.get_or_create`` then ``create`` do, in one write transaction of Core
        statements: a conversation opened from the chat tab or the API costs one commit, not two ORM
        sessions. An existing customer is not rewritten. Returns (customer id, conversation id).
        """
        statements = _statements()
        for attempt in range(2):
            try:
                with self.db.write_connection() as connection:
                    customer, conversation = _opening_values(contact, channel, context, utcnow())
                    found = _run(connection, statements.customer_by_phone, customer)
                    customer_id = (found or _run(connection, statements.add_customer, customer))[0][0]
                    _run(connection, statements.add_conversation, {**conversation, "customer_id": customer_id})
                return customer_id, conversation["id"]
            except IntegrityError:
                if attempt:  # a concurrent insert of the same phone won twice in a row: give up loudly
                    raise
        raise AssertionError("unreachable")

    def get(self, conversation_id: str) -> Conversation | None:
        """Return a conversation by id, or None."""
        with self.db.read() as session:
            return session.get(Conversation, conversation_id)

    def get_with_recent(self, conversation_id: str, limit: int, idempotency: tuple[str, str] | None = None) -> TurnRead:
        """The conversation and its latest ``limit`` messages (oldest first), read by one statement.

        One read per chat turn: the conversation row outer-joined to its latest messages,
        as plain rows of the columns a turn uses. The database extracts each answer's top entry from
        its ``meta`` and sorts the rows; the conversation's context comes as text, decoded once.
        Neither the ORM nor the JSON decoder handles the whole window (about 3 → 1 ms a turn at 50
        messages). With ``idempotency`` (scope, key) the same statement tells whether that key is taken;
        only then (a retry) is the response stored under it read, on the same connection (``replay``).
        """
        statement, values = _read_turn_statement(idempotency, {"conversation_id": conversation_id, "limit": limit})
        replay = None
        with self.db.read_connection() as connection:
            rows = _run(connection, statement, values)
            if idempotency is not None and rows and rows[0][_KEY_COLUMN] is not None:  # a retry: its stored response
                replay = _idempotency_record(_run(connection, _statements().idempotency, values))
        return _turn_read(rows, replay)

    def delete_if_empty(self, conversation_id: str) -> bool:
        """Delete a conversation that has no message yet (an opening whose first message failed)."""
        with self.db.write() as session:
            if session.scalar(select(Message.id).where(Message.conversation_id == conversation_id).limit(1)):
                return False
            conversation = session.get(Conversation, conversation_id)
            if conversation is not None:
                session.delete(conversation)
            return conversation is not None

    def set_status(self, conversation_id: str, status: str) -> Conversation:
        """Change who handles the conversation (bot, escalated, agent, closed)."""
        _check_choice("status", status, CONVERSATION_STATUSES)
        with self.db.session() as session:
            conversation = _get_conversation(session, conversation_id)
            conversation.status = status
            return conversation

    def update_context(self, conversation_id: str, context: dict[str, Any]) -> Conversation:
        """Merge ``context`` keys into the stored context (e.g. a Mastodon handle)."""
        with self.db.session() as session:
            conversation = _get_conversation(session, conversation_id)
            # A new dict, so the JSON column is seen as changed.
            conversation.context = {**(conversation.context or {}), **context}
            return conversation

    def attach_customer(
        self, conversation_id: str, customer_id: int, contact: tuple[str, str, str | None]
    ) -> Conversation:
        """Give a conversation opened without a customer (a Mastodon post's) the one who joined it.

        ``contact`` is the (name, E.164 phone, e-mail) of the form they joined with. A conversation
        that already has a customer keeps it (PermissionError): nobody takes over someone's chat.
        """
        name, phone, email = contact
        with self.db.session() as session:
            conversation = _get_conversation(session, conversation_id)
            if conversation.customer_id not in (None, customer_id):
                raise PermissionError("conversation already belongs to another customer")
            conversation.customer_id = customer_id
            conversation.contact_name, conversation.contact_phone, conversation.contact_email = name, phone, email
            return conversation


class MessageRepository:
    """Chat turns of a conversation, kept in order with their metadata."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        conversation_id: str,
        role: str,
        content: str,
        meta: dict[str, Any] | None = None,
    ) -> Message:
        """Append a message and touch the conversation's ``updated_at``."""
        with self.db.write() as session:
            stored = append_messages(session.connection(), conversation_id, [{"role": role, "content": content, "meta": meta}])
        return Message(**stored[0]._asdict())

    def list(self, conversation_id: str, limit: int | None = None) -> list[Message]:
        """Return the conversation's messages oldest first; ``limit`` keeps the latest N."""
        with self.db.read() as session:
            stmt = select(Message).where(Message.conversation_id == conversation_id)
            if limit is None:
                return list(session.scalars(stmt.order_by(Message.created_at, Message.id)))
            latest = session.scalars(
                stmt.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)
            )
            return list(reversed(latest.all()))

    def list_after(self, conversation_id: str, after_id: int, roles: tuple[str, ...] | None = None) -> list[Message]:
        """Return the conversation's messages with an id above ``after_id`` (optionally of ``roles``), by id."""
        with self.db.read() as session:
            stmt = select(Message).where(Message.conversation_id == conversation_id, Message.id > after_id)
            if roles is not None:
                stmt = stmt.where(Message.role.in_(roles))
            return list(session.scalars(stmt.order_by(Message.id)))

    def get(self, message_id: int) -> Message | None:
        """Return a message by id, or None."""
        with self.db.read() as session:
            return session.get(Message, message_id)


class FeedbackRepository:
    """Thumbs up/down on assistant answers, one vote per message."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        message_id: int,
        conversation_id: str,
        rating: int,
        comment: str | None = None,
    ) -> Feedback:
        """Store or replace the vote on an assistant message of this conversation.

        The conversation check stops a client from rating messages of someone else's chat.
        """
        if isinstance(rating, bool) or rating not in (1, -1):
            raise ValueError("rating must be +1 or -1")
        for attempt in range(2):
            try:
                with self.db.session() as session:
                    message = session.get(Message, message_id)
                    if message is None or message.conversation_id != conversation_id:
                        raise ValueError("message does not belong to this conversation")
                    if message.role != "assistant":
                        raise ValueError("only assistant messages can be rated")
                    feedback = session.scalars(
                        select(Feedback).where(Feedback.message_id == message_id)
                    ).one_or_none()
                    if feedback is None:
                        feedback = Feedback(message_id=message_id, conversation_id=conversation_id)
                        session.add(feedback)
                    feedback.rating = rating
                    feedback.comment = comment
                    session.flush()
                    return feedback
            except IntegrityError:
                if attempt:  # a concurrent first vote won the unique constraint twice
                    raise
        raise AssertionError("unreachable")


class AppStateRepository:
    """Tiny persistent key/value store (e.g. the last Mastodon status id seen)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str, default: Any = None) -> Any:
        """Return the JSON value stored under ``key``, or ``default``."""
        with self.db.read() as session:
            state = session.get(AppState, key)
            return default if state is None else state.value

    def set(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under ``key``, replacing any previous one."""
        with self.db.session() as session:
            session.merge(AppState(key=key, value=value, updated_at=utcnow()))


def _get_conversation(session: Session, conversation_id: str) -> Conversation:
    """Load a conversation inside ``session`` or raise NotFoundError."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFoundError(f"conversation {conversation_id!r} not found")
    return conversation


def _turn_read(rows: list[tuple], replay: IdempotencyKey | None, stamp: TurnStamp | None = None) -> TurnRead:
    """``get_with_recent``'s rows as a TurnRead (no rows: no such conversation)."""
    if not rows:
        return TurnRead(None, [])
    conversation_id, customer_id, status, context, _, _, _, ticket_id, priority, ticket_status = rows[0][:_KEY_COLUMN]
    head = ConversationHead(conversation_id, customer_id, status, json.loads(context) if context else None)
    ticket = None
    if ticket_id is not None:
        ticket = Ticket(id=ticket_id, conversation_id=conversation_id, priority=priority, status=ticket_status)
    recent = [RecentMessage(*row[4:7]) for row in rows if row[4] is not None]  # None: outer join
    return TurnRead(head, recent, replay, ticket, stamp)


def _read_turn_statement(
    idempotency: tuple[str, str] | None, values: dict[str, Any], stamped: bool = False
) -> tuple[Executable, dict[str, Any]]:
    """The turn's read and its parameters: with (scope, key) it also tells whether the key is taken (``_KEY_COLUMN``).

    ``stamped`` (PostgreSQL) adds two last columns on every row: the message's created_at and the conversation
    row's xmin (``TurnStamp``)."""
    statements = _statements()
    if idempotency is None:
        return statements.recent_stamped if stamped else statements.recent, values
    scope, key = idempotency
    return statements.recent_and_key_stamped if stamped else statements.recent_and_key, {**values, "scope": scope, "key": key}


class StoredMessage(NamedTuple):
    """A message just written by ``append_messages``: its values and id (a plain row, not an ORM instance)."""

    id: int
    conversation_id: str
    role: str
    content: str
    meta: dict[str, Any] | None
    created_at: datetime


def append_messages(connection: Connection, conversation_id: str, rows: list[dict[str, Any]]) -> list[StoredMessage]:
    """Add messages (dicts of role, content and optionally meta, created_at) inside the caller's write transaction.

    Touches the conversation's ``updated_at`` with one UPDATE (no SELECT first: it also tells whether
    the conversation exists), then inserts the messages returning their ids in order: on PostgreSQL
    in one INSERT (one round trip), on SQLite row by row (in process, each insert as cheap as one
    round trip's bookkeeping).
    """
    now = utcnow()
    values = _message_values(conversation_id, rows, now)
    statements = _statements()
    if _run(connection, statements.touch, {"conversation_id": conversation_id, "now": now}) == 0:
        raise NotFoundError(f"conversation {conversation_id!r} not found")
    if connection.dialect.name == "sqlite":
        ids = [_run(connection, statements.add_message, value)[0][0] for value in values]
    else:
        ids = connection.execute(statements.add_messages, values).scalars().all()
    return [StoredMessage(message_id, **value) for message_id, value in zip(ids, values, strict=True)]


def _message_values(conversation_id: str, rows: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The column values of messages to insert (``created_at`` defaults to ``now``); a bad role raises ValueError."""
    for row in rows:
        _check_choice("role", row["role"], MESSAGE_ROLES)
    return [{"conversation_id": conversation_id, "role": row["role"], "content": row["content"],
             "meta": row.get("meta"), "created_at": row.get("created_at") or now} for row in rows]  # fmt: skip


def lock_live_ticket(connection: Connection, conversation_id: str) -> Ticket | None:
    """The conversation's ticket that is not CLOSED, locked until the caller's write transaction ends.

    ``FOR UPDATE`` on PostgreSQL (SQLite's write transaction already keeps other writers out). The
    ticket comes back as a copy outside any session, with its columns only (its history is not read).
    """
    rows = _run(connection, _statements().live_ticket, {"conversation_id": conversation_id})
    if not rows:
        return None
    columns = _statements().live_ticket.selected_columns
    return Ticket(**{column.name: value for column, value in zip(columns, rows[0], strict=True)})


def mark_escalated(connection: Connection, conversation_id: str) -> None:
    """The conversation goes to ``escalated`` inside the caller's write transaction, unless an agent has it
    (or it already is): one UPDATE, nothing loaded."""
    _run(connection, _statements().mark_escalated, {"conversation_id": conversation_id, "now": utcnow()})


def append_turn(
    connection: Connection, conversation_id: str, rows: list[dict[str, Any]], record: dict[str, Any] | None = None
) -> list[StoredMessage]:
    """A chat turn's messages and, with ``record`` (scope, key, request_hash, response), its idempotency record.

    On PostgreSQL one statement does it all: data-modifying CTEs touch the conversation, insert the
    messages and the record. A statement is atomic on its own, so the caller can run it in autocommit
    (``Database.write_statement``): one round trip where BEGIN, UPDATE, INSERT, INSERT and COMMIT took
    five. Elsewhere ``append_messages`` and the record's INSERT run in the caller's write transaction.
    A missing conversation raises NotFoundError, a taken key IntegrityError; either way nothing is stored.
    """
    if connection.dialect.name != "postgresql":
        stored = append_messages(connection, conversation_id, rows)
        if record is not None:
            IdempotencyRepository.record(connection, conversation_id=conversation_id, **record)
        return stored
    statement, params, values = _turn_write(conversation_id, rows, record)
    return _stored_turn(conversation_id, _run(connection, statement, params), values)


def _turn_write(
    conversation_id: str, rows: list[dict[str, Any]], record: dict[str, Any] | None, ticket: Ticket | None = None,
    seen: TurnStamp | None = None,
) -> tuple[TextClause, dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
    """PostgreSQL's one statement of a turn, its parameters and the messages' values (see ``_turn_statement``)."""
    now = utcnow()
    values = _message_values(conversation_id, rows, now)
    params: dict[str, Any] = {"conversation_id": conversation_id, "now": now, **(record or {})}
    for i, value in enumerate(values):
        params.update({f"{name}_{i}": value[name] for name in ("role", "content", "meta", "created_at")})
    if ticket is not None:
        params.update(ticket_id=ticket.id, ticket_status=ticket.status, ticket_priority=ticket.priority)
    if seen is not None:
        params.update(seen_version=seen.version, seen_newest=seen.newest_at)
    return _turn_statement(len(values), record is not None, ticket is not None, seen is not None), params, values


def _stored_turn(conversation_id: str, rows: list[tuple], values: list[dict[str, Any]]) -> list[StoredMessage]:
    """The messages just written, from the statement's rows (their ids) and their values."""
    if not rows:
        raise NotFoundError(f"conversation {conversation_id!r} not found")
    return [StoredMessage(row[0], **value) for row, value in zip(rows, values, strict=True)]


# A conversation an escalation marks (``mark_escalated`` as SQL to embed): escalated, unless an agent has it.
_ESCALATED = "status = CASE WHEN status = 'agent' THEN status ELSE 'escalated' END"


@functools.lru_cache(maxsize=32)
def _turn_statement(count: int, with_record: bool, repeat: bool = False, guarded: bool = False) -> TextClause:
    """PostgreSQL's one statement of ``append_turn`` for ``count`` messages, with or without the record.

    The messages are inserted in the order of their rows (``ORDER BY position``), so their ids, taken from
    the table's sequence in that order, come back sorted as the rows are (what SQLAlchemy's own multi-row
    INSERT on PostgreSQL relies on). No conversation, nothing touched: no row is inserted and none returned.
    With ``repeat`` it also locks the live ticket the turn read (same id, status and priority) and marks the
    conversation escalated; no such ticket any more, nothing is written either. ``guarded`` writes only if the
    conversation is as the turn read it (``TurnStamp``): its row's version (xmin) is the one read, which
    a concurrent writer's UPDATE changes too (READ COMMITTED re-checks the row it waited for), and no message
    is newer than the newest read (a ticket's notice touches no conversation); each row then also carries
    the row's new version.
    """
    messages, keys, tickets = Message.__table__, IdempotencyKey.__table__, Ticket.__table__
    rows = ", ".join(f"(:role_{i}, :content_{i}, :meta_{i}, :created_at_{i}, {i})" for i in range(count))
    guard, returning = "", "RETURNING id"
    if guarded:
        guard = (" AND xmin::text = :seen_version AND NOT EXISTS (SELECT 1 FROM messages WHERE "
                 "conversation_id = :conversation_id AND created_at > :seen_newest)")  # fmt: skip
        returning = "RETURNING id, xmin::text AS version"
    touch = f"WITH touched AS (UPDATE conversations SET updated_at = :now WHERE id = :conversation_id{guard} {returning}), "
    if repeat:  # the live ticket as the turn read it, locked; else nothing is touched or inserted
        touch = (
            "WITH live AS (SELECT id FROM tickets WHERE id = :ticket_id AND conversation_id = :conversation_id "
            "AND status = :ticket_status AND priority = :ticket_priority FOR UPDATE), "
            f"touched AS (UPDATE conversations SET updated_at = :now, {_ESCALATED} WHERE id = :conversation_id "
            f"AND EXISTS (SELECT 1 FROM live){guard} {returning}), "
        )
    sql = touch + (
        "added AS (INSERT INTO messages (conversation_id, role, content, meta, created_at) "
        "SELECT touched.id, v.role, v.content, v.meta, v.created_at "
        f"FROM touched, (VALUES {rows}) AS v (role, content, meta, created_at, position) "
        "ORDER BY v.position RETURNING id)"
    )
    binds = [bindparam("conversation_id", type_=messages.c.conversation_id.type),
             bindparam("now", type_=messages.c.created_at.type)]  # fmt: skip
    for i in range(count):
        binds += [bindparam(f"{name}_{i}", type_=messages.c[name].type) for name in ("role", "content", "meta", "created_at")]
    if repeat:
        binds += [bindparam(f"ticket_{name}", type_=tickets.c[name].type) for name in ("id", "status", "priority")]
    if guarded:
        binds += [bindparam("seen_version", type_=Text()), bindparam("seen_newest", type_=messages.c.created_at.type)]
    if with_record:
        sql += (
            ", kept AS (INSERT INTO idempotency_keys (scope, key, request_hash, conversation_id, response, created_at) "
            "SELECT :scope, :key, :request_hash, touched.id, :response, :now FROM touched)"
        )
        binds += [bindparam(name, type_=keys.c[name].type) for name in ("scope", "key", "request_hash", "response")]
    returned = "id, (SELECT version FROM touched)" if guarded else "id"
    return text(f"{sql} SELECT {returned} FROM added ORDER BY id").bindparams(*binds)


@functools.cache
def _open_ticket_statement() -> TextClause:
    """PostgreSQL: a chat turn's new ticket, its "created" event and the conversation marked escalated, in one
    statement (``AsyncTurnRepository.append_turn_opening_ticket``); its row: the ticket's id and customer."""
    tickets, events = Ticket.__table__, TicketEvent.__table__
    sql = (
        f"WITH escalated AS (UPDATE conversations SET {_ESCALATED} WHERE id = :conversation_id "
        "RETURNING id, customer_id), "
        "opened AS (INSERT INTO tickets (conversation_id, customer_id, category, priority, status, summary, "
        "created_at, updated_at, sla_due_at) SELECT escalated.id, COALESCE(:customer_id, escalated.customer_id), "
        ":category, :priority, :status, :summary, :created_at, :updated_at, :sla_due_at FROM escalated "
        "RETURNING id, customer_id), "
        "noted AS (INSERT INTO ticket_events (ticket_id, kind, actor, body, created_at) "
        "SELECT opened.id, 'created', :actor, :body, :now FROM opened) "
        "SELECT id, customer_id FROM opened"
    )
    binds = [bindparam("conversation_id", type_=tickets.c.conversation_id.type),
             bindparam("customer_id", type_=tickets.c.customer_id.type),
             bindparam("actor", type_=events.c.actor.type), bindparam("body", type_=events.c.body.type),
             bindparam("now", type_=events.c.created_at.type)]  # fmt: skip
    binds += [bindparam(name, type_=tickets.c[name].type)
              for name in ("category", "priority", "status", "summary", "created_at", "updated_at", "sla_due_at")]  # fmt: skip
    return text(sql).bindparams(*binds)


@functools.cache
def _open_statement() -> TextClause:
    """PostgreSQL: ``open_for_contact``'s rows in one statement (``AsyncTurnRepository.open_for_contact``): the
    customer of the phone, found or inserted, and the new conversation for them; its row: the customer's id
    and the conversation row's version. A customer inserted meanwhile by another opening with the same new
    phone makes it fail on the unique phone index (IntegrityError), as the ORM's opening does."""
    customers, conversations = Customer.__table__, Conversation.__table__
    made = [name for name in _NEW_CUSTOMER if name != "created_at"]  # the conversation's created_at serves both
    sql = (
        "WITH found AS (SELECT id FROM customers WHERE phone = :phone), "
        f"made AS (INSERT INTO customers ({', '.join(_NEW_CUSTOMER)}) "
        f"SELECT {', '.join(':' + name for name in _NEW_CUSTOMER)} WHERE NOT EXISTS (SELECT 1 FROM found) RETURNING id), "
        "who AS (SELECT id FROM found UNION ALL SELECT id FROM made), "
        f"opened AS (INSERT INTO conversations (customer_id, {', '.join(_NEW_CONVERSATION)}) "
        f"SELECT who.id, {', '.join(':' + name for name in _NEW_CONVERSATION)} FROM who "
        "RETURNING customer_id, xmin::text AS version) "
        "SELECT customer_id, version FROM opened"
    )
    binds = [bindparam(name, type_=customers.c[name].type) for name in made]
    binds += [bindparam(name, type_=conversations.c[name].type) for name in _NEW_CONVERSATION]
    return text(sql).bindparams(*binds)


class _Statements:
    """The statements of every chat turn, built once with bound parameters.

    A statement object memoises its compiled-cache key, so a turn neither rebuilds nor re-keys them.
    """

    def __init__(self) -> None:
        conversations, messages = Conversation.__table__, Message.__table__
        recent = (
            select(messages.c.id, messages.c.role, messages.c.content,
                   messages.c.meta["top_entry"].as_string().label("top_entry"), messages.c.created_at)
            .where(messages.c.conversation_id == bindparam("conversation_id"))
            .order_by(messages.c.created_at.desc(), messages.c.id.desc())
            .limit(bindparam("limit"))
            .subquery()
        )  # fmt: skip
        tickets = Ticket.__table__
        columns = (conversations.c.id, conversations.c.customer_id, conversations.c.status,
                   cast(conversations.c.context, Text), recent.c.role, recent.c.content, recent.c.top_entry,
                   tickets.c.id, tickets.c.priority, tickets.c.status)  # fmt: skip
        # ... with the live ticket, if any (at most one: a unique index on conversation_id where status != 'CLOSED')
        live = and_(tickets.c.conversation_id == conversations.c.id, tickets.c.status != "CLOSED")
        window = conversations.outerjoin(recent, true()).outerjoin(tickets, live)
        this_one = conversations.c.id == bindparam("conversation_id")
        oldest_first = (recent.c.created_at, recent.c.id)
        self.recent: Select = select(*columns).select_from(window).where(this_one).order_by(*oldest_first)
        keys = IdempotencyKey.__table__
        taken = window.outerjoin(keys, and_(keys.c.scope == bindparam("scope"), keys.c.key == bindparam("key")))
        # ... and on every row the id of the record stored under an Idempotency-Key, if the key is taken.
        self.recent_and_key: Select = select(*columns, keys.c.id).select_from(taken).where(this_one).order_by(*oldest_first)
        # PostgreSQL: the same reads stamped (``TurnStamp``) with each message's created_at and the row's version.
        stamp = (recent.c.created_at, literal_column("conversations.xmin::text", Text).label("version"))
        self.recent_stamped: Select = self.recent.add_columns(*stamp)
        self.recent_and_key_stamped: Select = self.recent_and_key.add_columns(*stamp)
        self.touch: Update = (
            update(conversations).where(conversations.c.id == bindparam("conversation_id"))
            .values(updated_at=bindparam("now"))
        )  # fmt: skip
        self.add_messages: Insert = insert(messages).returning(messages.c.id, sort_by_parameter_order=True)
        self.add_message: Insert = _insert_values(
            messages, "conversation_id", "role", "content", "meta", "created_at"
        ).returning(messages.c.id)
        customers = Customer.__table__
        self.customer_by_phone: Select = select(customers.c.id).where(customers.c.phone == bindparam("phone"))
        self.add_customer: Insert = _insert_values(customers, *_NEW_CUSTOMER).returning(customers.c.id)
        self.add_conversation: Insert = _insert_values(conversations, "customer_id", *_NEW_CONVERSATION)
        self.delete_if_empty: Delete = delete(conversations).where(
            conversations.c.id == bindparam("conversation_id"),
            ~exists().where(messages.c.conversation_id == conversations.c.id),
        )
        self.live_ticket: Select = (
            select(tickets)  # at most one: a unique index on conversation_id where status != 'CLOSED'
            .where(tickets.c.conversation_id == bindparam("conversation_id"), tickets.c.status != "CLOSED")
            .with_for_update()
        )  # fmt: skip
        self.mark_escalated: Update = (
            update(conversations)
            .where(conversations.c.id == bindparam("conversation_id"), conversations.c.status != "agent",
                   conversations.c.status != "escalated")
            .values(status="escalated", updated_at=bindparam("now"))
        )  # fmt: skip
        self.idempotency: Select = select(keys).where(keys.c.scope == bindparam("scope"), keys.c.key == bindparam("key"))
        self.add_idempotency: Insert = _insert_values(keys, "scope", "key", "request_hash", "conversation_id", "response",
                                                      "created_at")  # fmt: skip


def _insert_values(table, *columns: str) -> Insert:
    """An INSERT of exactly these columns, each bound by its name with the column's type."""
    return insert(table).values({name: bindparam(name, type_=table.c[name].type) for name in columns})


def _run(connection: Connection, statement: Executable, values: dict[str, Any]) -> list[tuple] | int:
    """Run one of the chat turn's statements: its rows (a SELECT or RETURNING) or else its row count.

    SQLAlchemy's work around each execution (execution context, compiled-cache lookup, events, result
    set-up) cost about twice a SQLite statement, which runs in process, and half of a turn's CPU on
    PostgreSQL; a chat turn runs four or five statements. The SQL that SQLAlchemy compiled once goes
    to the connection's DBAPI cursor instead, with the same parameters (see ``_DbapiStatement``).
    """
    return _dbapi_statement(statement, connection.dialect).run(connection, values)


class _DbapiStatement:
    """A Core statement compiled once for a dialect and run on the DBAPI cursor of a SQLAlchemy connection.

    The SQL is SQLAlchemy's (bind casts included); every parameter goes through its type's own bind
    processor (JSON, dates, JSON paths) and every selected column through its result processor, as
    SQLAlchemy would do them. A DBAPI error comes back as SQLAlchemy's (``IntegrityError`` for a taken
    key). The connection's transaction (and its locks) stays SQLAlchemy's.
    """

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self._compiled, self._dialect, self.sql = compiled, dialect, compiled.string
        self._order = compiled.positiontup if compiled.positional else None  # None: parameters by name
        self._binds = [(name, processor) for bind, name in compiled.bind_names.items()
                       if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None]  # fmt: skip
        columns = statement.selected_columns if isinstance(statement, Select) else []
        self._results = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
        if not any(self._results):
            self._results = []

    def run(self, connection: Connection, values: dict[str, Any]) -> list[tuple] | int:
        args = self._args(values)
        cursor = connection.connection.cursor()
        try:
            cursor.execute(self.sql, args)
            if cursor.description is None:
                return cursor.rowcount
            rows = cursor.fetchall()
        except self._dialect.loaded_dbapi.Error as exc:
            raise self._error(args, exc) from exc
        finally:
            cursor.close()
        return self._decode(rows)

    async def run_async(self, connection: Any, values: dict[str, Any]) -> list[tuple] | int:
        """``run`` on an asynchronous DBAPI connection of the same driver (psycopg's ``AsyncConnection``)."""
        args = self._args(values)
        try:
            async with connection.cursor() as cursor:
                await cursor.execute(self.sql, args)
                if cursor.description is None:
                    return cursor.rowcount
                rows = await cursor.fetchall()
        except self._dialect.loaded_dbapi.Error as exc:
            raise self._error(args, exc) from exc
        return self._decode(rows)

    def _args(self, values: dict[str, Any]) -> dict[str, Any] | tuple:
        params = self._compiled.construct_params(values)
        for name, processor in self._binds:
            params[name] = processor(params[name])
        return params if self._order is None else tuple(params[name] for name in self._order)

    def _error(self, args: Any, exc: Exception) -> DBAPIError:
        return DBAPIError.instance(self.sql, args, exc, self._dialect.loaded_dbapi.Error, hide_parameters=True)

    def _decode(self, rows: list[tuple]) -> list[tuple]:
        if self._results:
            rows = [tuple(v if p is None else p(v) for p, v in zip(self._results, row, strict=True)) for row in rows]
        return rows


@functools.lru_cache(maxsize=64)
def _dbapi_statement(statement: Executable, dialect: Dialect) -> _DbapiStatement:
    return _DbapiStatement(statement, dialect)


def _idempotency_record(rows: list[tuple]) -> IdempotencyKey | None:
    """The record read by ``_Statements.idempotency``, as a copy outside any session (or None)."""
    if not rows:
        return None
    columns = _statements().idempotency.selected_columns
    return IdempotencyKey(**{column.name: value for column, value in zip(columns, rows[0], strict=True)})


@functools.cache
def _statements() -> _Statements:
    """Built on first use, not at import."""
    return _Statements()


class IdempotencyRepository:
    """Responses stored under an API client's ``Idempotency-Key`` (see ``IdempotencyKey``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, scope: str, key: str) -> IdempotencyKey | None:
        """The record of ``key`` in ``scope``, or None."""
        with self.db.read_connection() as connection:
            return _idempotency_record(_run(connection, _statements().idempotency, {"scope": scope, "key": key}))

    def purge(self, before: datetime, batch: int = 1000) -> int:
        """Delete the records stored before ``before``, ``batch`` at a time, each batch its own short write
        transaction (SQLite's write lock is never held for long); returns how many were deleted."""
        keys = IdempotencyKey.__table__
        oldest = select(keys.c.id).where(keys.c.created_at < before).order_by(keys.c.id).limit(batch)
        statement = delete(keys).where(keys.c.id.in_(oldest.scalar_subquery()))
        deleted = 0
        while True:
            with self.db.write_connection() as connection:
                count = connection.execute(statement).rowcount
            deleted += count
            if count < batch:
                return deleted

    @staticmethod
    def record(
        connection: Connection, scope: str, key: str, request_hash: str, conversation_id: str, response: dict[str, Any]
    ) -> None:
        """Store a response inside the caller's write transaction (IntegrityError if the key is taken).

        A plain INSERT (no unit of work).
        """
        values = {"scope": scope, "key": key, "request_hash": request_hash, "conversation_id": conversation_id,
                  "response": response, "created_at": utcnow()}  # fmt: skip
        _run(connection, _statements().add_idempotency, values)


class _TicketTaken(Exception):
    """The conversation has a live ticket already (a concurrent turn opened it)."""


class SqliteTurnRepository:
    """A chat turn's read and write on the server's event loop, SQLite: ``AsyncTurnRepository``'s methods.

    SQLite runs inside this process, so its statements are not awaited: the read (in WAL mode it never waits
    for a writer) and the write (one short transaction) run on the loop itself, which saves each message
    the hand-off to a thread and back. A write that would queue behind another writer (a thread of this
    process or another process on the file) goes to a thread of the server's pool instead, so the loop never
    waits for a lock. Escalations keep the threaded path (``ticket_writes``), where the ticket service
    writes the ticket with the turn.
    """

    ticket_writes = False  # ChatService.send_async: a turn that escalates is stored by the threaded path
    opens_conversations = False  # an API opening keeps the threaded path

    def __init__(self, db: Database) -> None:
        self.db = db
        self.conversations = ConversationRepository(db)
        self.idempotency = IdempotencyRepository(db)

    async def get_with_recent(
        self, conversation_id: str, limit: int, idempotency: tuple[str, str] | None = None, fresh: bool = False
    ) -> TurnRead:
        """``ConversationRepository.get_with_recent``, on the loop (always from the database: ``fresh`` is moot)."""
        return self.conversations.get_with_recent(conversation_id, limit, idempotency)

    async def append_turn(
        self, conversation_id: str, rows: list[dict[str, Any]], record: dict[str, Any] | None = None,
        seen: TurnRead | None = None,
    ) -> list[StoredMessage]:  # fmt: skip
        """``append_turn`` in its write transaction: on the loop if no other writer holds SQLite, else in a thread.

        ``seen`` is moot: reads are never remembered here (the read runs in this process, at about the cost of
        checking it)."""
        with self.db.write_connection_if_free() as connection:
            if connection is not None:
                return append_turn(connection, conversation_id, rows, record)
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self._append_queued, conversation_id, rows, record)

    def _append_queued(
        self, conversation_id: str, rows: list[dict[str, Any]], record: dict[str, Any] | None
    ) -> list[StoredMessage]:
        with self.db.write_connection() as connection:
            return append_turn(connection, conversation_id, rows, record)

    async def idempotency_record(self, scope: str, key: str) -> IdempotencyKey | None:
        """``IdempotencyRepository.get``, on the loop."""
        return self.idempotency.get(scope, key)

    async def close(self) -> None:
        """Nothing to close: the statements use the database's own pool."""


class AsyncTurnRepository:
    """A chat turn's read and write on the server's event loop (PostgreSQL, psycopg's asynchronous connections).

    The statements of ``ConversationRepository.get_with_recent`` and ``append_turn``, as SQLAlchemy compiled
    them for the psycopg dialect (the same SQL and parameters serve its async connections), run on a
    connection of ``pool`` (``Database.open_async_pool``): no thread is held while PostgreSQL answers.
    Errors are SQLAlchemy's, as on the threaded path (a taken key is an IntegrityError, a pool out of
    connections a TimeoutError).
    """

    ticket_writes = True  # an escalation's ticket is opened, or its repeat marked, by the turn's statements
    opens_conversations = True  # open_for_contact: an API opening on the loop too

    def __init__(self, db: Database, pool: Any, remember: int = 0) -> None:
        self.dialect = db.engine.dialect
        self.pool = pool
        self.remember = remember
        self._remembered: OrderedDict[str, TurnRead] = OrderedDict()  # least recently used first
        self._shared: OrderedDict[str, None] = OrderedDict()  # conversations not remembered (see _written_elsewhere)

    async def close(self) -> None:
        """Close the pool's connections."""
        await self.pool.close()

    async def get_with_recent(
        self, conversation_id: str, limit: int, idempotency: tuple[str, str] | None = None, fresh: bool = False
    ) -> TurnRead:
        """``ConversationRepository.get_with_recent``, awaited, stamped with the state it saw (``TurnStamp``).

        Up to ``remember`` conversations are remembered as this process' last turn in each left them (the read
        and the messages it added), so that the next turn there does not read them again: a remembered read
        is stamped ``remembered`` and its write (``append_turn`` with ``seen``) happens only if the
        conversation is still in that state, else StaleTurn. It does not tell whether an Idempotency-Key
        is taken: the write's INSERT of the record does (IntegrityError). ``fresh`` reads the database."""
        remembered = self._remembered.pop(conversation_id, None)
        if remembered is not None and not fresh and remembered.stamp.window == limit:
            self._remembered[conversation_id] = remembered  # the most recently used last
            return remembered._replace(recent=list(remembered.recent))
        statement, values = _read_turn_statement(idempotency, {"conversation_id": conversation_id, "limit": limit},
                                                 stamped=True)  # fmt: skip
        replay = None
        async with self._connection() as connection:
            rows = await self._run(connection, statement, values)
            if idempotency is not None and rows and rows[0][_KEY_COLUMN] is not None:
                record = await self._run(connection, _statements().idempotency, values)
                replay = _idempotency_record(record)
        stamp = TurnStamp(rows[-1][-1], rows[-1][-2], limit) if rows else None
        return _turn_read(rows, replay, stamp)

    async def append_turn(
        self, conversation_id: str, rows: list[dict[str, Any]], record: dict[str, Any] | None = None,
        repeat: Ticket | None = None, seen: TurnRead | None = None,
    ) -> list[StoredMessage] | None:  # fmt: skip
        """``append_turn``'s one statement, awaited (autocommit: it is atomic by itself).

        With ``repeat`` (the live ticket the turn read, which the turn escalates to again) the same statement
        locks that ticket and marks the conversation escalated, as ``TicketService.escalate_within`` does
        for a repeat; if the ticket changed since it was read (resolved, closed, another priority) nothing
        is written and None is returned.

        With ``seen`` (the turn's stamped read) the write also checks that the conversation is as read. If it is
        not (or, for a repeat, the ticket changed), a remembered read raises StaleTurn (its answer came from an
        out-of-date state: nothing is written), while a read from the database is written as an unchecked turn
        is (a concurrent writer came between the read and the write). A checked write leaves the conversation
        remembered as it left it, with the row's new version (escalated, after a repeat)."""
        stamp = seen.stamp if seen is not None and self.remember else None
        if stamp is not None:
            statement, params, values = _turn_write(conversation_id, rows, record, repeat, seen=stamp)
            async with self._connection() as connection:
                written = await self._run(connection, statement, params)
            if written:
                self._remember(seen, written[0][1], values, escalated=repeat is not None)
                return _stored_turn(conversation_id, written, values)
            if stamp.remembered:
                self._written_elsewhere(conversation_id)
                raise StaleTurn(conversation_id)
            if repeat is not None:  # the ticket changed, or the conversation did: as an unchecked repeat would
                return None
        statement, params, values = _turn_write(conversation_id, rows, record, repeat)
        async with self._connection() as connection:
            ids = await self._run(connection, statement, params)
        return None if repeat is not None and not ids else _stored_turn(conversation_id, ids, values)

    async def open_for_contact(
        self, contact: tuple[str, str, str | None], channel: str, window: int
    ) -> tuple[int, TurnRead]:
        """``ConversationRepository.open_for_contact`` in one statement, awaited: the customer of this (name, E.164
        phone, e-mail), found or created, and a new conversation for them (one round trip instead of the five of
        a transaction's BEGIN, lookup, two inserts and COMMIT).

        Returns the customer's id and the new conversation as its first turn would read it (no message yet),
        remembered when this repository remembers conversations (``window``: the turn's), so that the turn
        does not read it again."""
        for attempt in range(2):
            customer, conversation = _opening_values(contact, channel, None, utcnow())
            try:
                async with self._connection() as connection:
                    (customer_id, version), = await self._run(connection, _open_statement(), {**customer, **conversation})
                break
            except IntegrityError:
                if attempt:  # a concurrent insert of the same phone won twice in a row: give up loudly
                    raise
        conversation_id = conversation["id"]
        opened = TurnRead(ConversationHead(conversation_id, customer_id, "bot", None), [],
                          stamp=TurnStamp(version, None, window, remembered=True))  # fmt: skip
        if self.remember:
            self._remembered[conversation_id] = opened
            self._trim()
        return customer_id, opened

    async def delete_if_empty(self, conversation_id: str) -> None:
        """Delete a conversation that has no message (an opening whose first message was refused)."""
        self._remembered.pop(conversation_id, None)
        async with self._connection() as connection:
            await self._run(connection, _statements().delete_if_empty, {"conversation_id": conversation_id})

    def _trim(self) -> None:
        while len(self._remembered) > self.remember:
            self._remembered.popitem(last=False)

    def _written_elsewhere(self, conversation_id: str) -> None:
        """Another writer (an agent, a ticket's notice, another replica) changed a remembered conversation: its
        turns read it from the database from now on, so that a conversation two processes take turns
        answering costs no answer twice more than once."""
        self._remembered.pop(conversation_id, None)
        self._shared[conversation_id] = None
        while len(self._shared) > self.remember:
            self._shared.popitem(last=False)

    def _remember(self, seen: TurnRead, version: str, values: list[dict[str, Any]], escalated: bool = False) -> None:
        """Keep the conversation as this turn left it: what it read plus the messages it added, at ``version``.

        Only if those messages come after every message read (a message written between the turn's arrival
        and its read would otherwise sort after them in the database's order, not before)."""
        conversation_id, stamp = seen.conversation.id, seen.stamp
        if conversation_id in self._shared or (stamp.newest_at is not None and values[0]["created_at"] < stamp.newest_at):
            return
        added = [RecentMessage(value["role"], value["content"], (value["meta"] or {}).get("top_entry")) for value in values]
        recent = [*seen.recent, *added][-stamp.window:]
        newest_at = max(value["created_at"] for value in values)
        conversation = seen.conversation
        if escalated and conversation.status != "agent":  # what the repeat's statement did (``_ESCALATED``)
            conversation = conversation._replace(status="escalated")
        self._remembered[conversation_id] = seen._replace(
            conversation=conversation, recent=recent, replay=None,
            stamp=TurnStamp(version, newest_at, stamp.window, remembered=True),
        )  # fmt: skip
        self._remembered.move_to_end(conversation_id)
        self._trim()

    async def append_turn_opening_ticket(
        self, conversation_id: str, customer_id: int | None, ticket: dict[str, Any], event_body: str,
        build: Callable[[Ticket], tuple[list[dict[str, Any]], dict[str, Any] | None]],
    ) -> tuple[Ticket, list[StoredMessage]] | None:  # fmt: skip
        """A turn that opens the conversation's ticket, in one write transaction of two statements.

        ``ticket`` holds the new ticket's columns (``TicketService.new_ticket``); the first statement inserts
        it with its "created" event (actor ``bot``) and marks the conversation escalated unless an agent has
        it, as ``TicketService.escalate_within`` does. ``build(ticket)`` then gives the turn's messages and
        idempotency record, which name the ticket. If the conversation has a live ticket already (opened
        meanwhile: the unique index refuses a second) nothing is written and None is returned."""
        values = {**ticket, "conversation_id": conversation_id, "customer_id": customer_id, "actor": "bot",
                  "body": event_body, "now": ticket["created_at"]}  # fmt: skip
        try:
            async with self._connection() as connection, connection.transaction():
                try:
                    rows = await self._run(connection, _open_ticket_statement(), values)
                except IntegrityError as exc:
                    raise _TicketTaken from exc  # rolls the transaction back
                if not rows:
                    raise NotFoundError(f"conversation {conversation_id!r} not found")
                opened = Ticket(id=rows[0][0], conversation_id=conversation_id, customer_id=rows[0][1], **ticket)
                statement, params, stored = _turn_write(conversation_id, *build(opened))
                return opened, _stored_turn(conversation_id, await self._run(connection, statement, params), stored)
        except _TicketTaken:
            return None

    async def _run(self, connection: Any, statement: Executable, values: dict[str, Any]) -> list[tuple] | int:
        return await _dbapi_statement(statement, self.dialect).run_async(connection, values)

    async def idempotency_record(self, scope: str, key: str) -> IdempotencyKey | None:
        """``IdempotencyRepository.get``, awaited."""
        async with self._connection() as connection:
            rows = await _dbapi_statement(_statements().idempotency, self.dialect).run_async(
                connection, {"scope": scope, "key": key}
            )
        return _idempotency_record(rows)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        from psycopg_pool import PoolTimeout

        try:
            async with self.pool.connection() as connection:
                yield connection
        except PoolTimeout as exc:
            raise PoolTimeoutError(f"no database connection: {exc}") from None
