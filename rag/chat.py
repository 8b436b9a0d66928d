"""Customer conversations: contact form, messages, answers, feedback and escalation to a ticket.

Everything here is plain Python over the storage repositories, so the Gradio tab, the HTTP API
and the tests share one implementation. A `ChatSession` (customer id + conversation id) is the
only thing a UI keeps per user; every call checks the message or ticket belongs to it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from rag.answer import Answer, AnswerEngine, last_item
from rag.contact import Contact
from rag.nlu import TICKET_CATEGORIES
from storage import (
    ConversationRepository,
    CustomerRepository,
    Database,
    FeedbackRepository,
    IdempotencyRepository,
    MessageRepository,
)
from storage.models import Message, Ticket, utcnow
from storage.repositories import (
    AsyncTurnRepository,
    ConversationHead,
    RecentMessage,
    SqliteTurnRepository,
    StaleTurn,
    TurnRead,
    append_turn,
)
from tickets import PRIORITY_LABELS, SLA_HOURS, Priority, TicketService
from tickets.domain import strip_control_chars

log = logging.getLogger(__name__)
T = TypeVar("T")

AGENT_HANDLES_TEXT = (
    "Un conseiller a pris en charge votre conversation : votre message lui est transmis et il vous "
    "répondra ici même."
)
# Qualification categories of the procedure; the other intents map onto them.
_TICKET_CATEGORY_OF = {"activation": "technique", "assistance": "général"}
# A conversation joined from a Mastodon link without a ticket offers one: context[TICKET_OFFER_KEY]
# is its priority, and a plain "oui" from the customer accepts it.
TICKET_OFFER_KEY = "ticket_offer"
OFFER_ACCEPTED_TEXT = "Très bien : j'ouvre un dossier pour votre message, un conseiller va vous répondre ici même."
_YES = re.compile(
    r"^\s*(oui|ok|okay|d['’]accord|volontiers|je veux bien)\b[\s,!.]*"
    r"(oui|merci|svp|s['’]il vous pla[iî]t|je veux bien)?[\s,!.]*$",
    re.IGNORECASE,
)
# Latest messages read per turn (history, repeated-problem rule): never the whole conversation.
HISTORY_WINDOW = 50


class MessageError(ValueError):
    """A customer message that cannot be accepted; the text is a French message for the UI."""


class DuplicateMessage(MessageError):
    """The same message is already being answered in this conversation (a double click)."""


class AlreadyAnswered(Exception):
    """Another call with the same Idempotency-Key stored its turn first; ``response`` is what it returned."""

    def __init__(self, response: dict, request_hash: str) -> None:
        super().__init__("idempotency key already used")
        self.response = response
        self.request_hash = request_hash


@dataclass(frozen=True)
class ChatSession:
    """Identifies one customer's conversation; kept in per-user UI state, never shared.

    `customer_id` None: access was proven otherwise (the API's conversation key); `send` takes the
    customer from the conversation it reads."""

    customer_id: int | None
    conversation_id: str


@dataclass
class ChatReply:
    """Result of one customer message."""

    user_message_id: int
    answer: Answer | None
    assistant_message_id: int | None
    ticket: Ticket | None = None
    notice: str | None = None
    notice_message_id: int | None = None


class SendGuard:
    """Messages on their way, per conversation: the same text twice at once (or just after) is one send.

    A double click in the chat tab sends two events with the same text; with extractive answers
    the first may be stored before the second arrives, so a text also stays claimed for
    ``window_s`` seconds after its send ended.
    """

    def __init__(self, window_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._lock = threading.Lock()
        self._sends: dict[tuple[str, str], float | None] = {}  # None while in flight, else when it ended

    def claim(self, conversation_id: str, text: str) -> Callable[..., None]:
        """Hold (conversation, text) until the returned ``release(stored=True)``; DuplicateMessage if held.

        After ``release()`` the text stays claimed for ``window_s``; ``release(stored=False)`` (the
        send failed, nothing was stored) frees it at once so the customer can send it again.
        """
        key = (conversation_id, text)
        now = self.clock()
        with self._lock:
            for other, ended in list(self._sends.items()):
                if ended is not None and now - ended > self.window_s:
                    del self._sends[other]
            if key in self._sends:
                raise DuplicateMessage("Ce message est déjà en cours d'envoi.")
            self._sends[key] = None

        def release(stored: bool = True) -> None:
            with self._lock:
                if stored:
                    self._sends[key] = self.clock()
                else:
                    self._sends.pop(key, None)

        return release


@dataclass(frozen=True)
class Idempotency:
    """An API call's ``Idempotency-Key``: `render(reply)` is stored with the turn, in its transaction.

    It is called before the turn's messages are stored, so the response it renders cannot name their ids."""

    scope: str
    key: str
    request_hash: str
    render: Callable[[ChatReply], dict]


def _recent_turns(messages: list[RecentMessage], turns: int) -> list[tuple[str, str]]:
    """The last `turns` (customer question, bot answer) pairs of a conversation, oldest first."""
    pairs: list[tuple[str, str]] = []
    question = None
    for m in messages:
        if m.role == "user":
            question = m.content
        elif m.role == "assistant" and question is not None:
            pairs.append((question, m.content))
            question = None
    return pairs[-turns:] if turns else []


def _claimed(idempotency: Idempotency | None) -> tuple[str, str] | None:
    return (idempotency.scope, idempotency.key) if idempotency is not None else None


def _answer_context(earlier: list[RecentMessage]) -> tuple[list[str], str | None]:
    """What the engine needs of the latest messages: earlier answers' top entries and the last question."""
    previous = [m.top_entry for m in earlier if m.role == "assistant" and m.top_entry]
    return previous, next((m.content for m in reversed(earlier) if m.role == "user"), None)


def _turn_rows(text: str, received_at, answer: Answer | None) -> list[dict]:
    """The turn's messages: the customer's, and the answer with its metadata (none when an agent has the chat)."""
    rows: list[dict] = [{"role": "user", "content": text, "created_at": received_at}]
    if answer is not None:
        meta = answer.to_dict()
        meta.pop("text")
        rows.append({"role": "assistant", "content": answer.text, "meta": meta})
    return rows


def _with_notice(rows: list[dict], reply: ChatReply) -> list[dict]:
    """The turn's messages and, after an escalation, the notice that names its ticket."""
    if reply.ticket is None:
        return rows
    return [*rows, {"role": "system", "content": reply.notice, "meta": {"ticket_id": reply.ticket.id}}]


async def _stored_once(turns: AsyncTurnRepository, idempotency: Idempotency | None, write: Awaitable[T]) -> T:
    """Await a turn's write; a taken Idempotency-Key (a concurrent call stored first) is AlreadyAnswered."""
    try:
        return await write
    except IntegrityError:
        first = await turns.idempotency_record(idempotency.scope, idempotency.key) if idempotency else None
        if first is None:
            raise
        raise AlreadyAnswered(first.response, first.request_hash) from None


def _with_ids(reply: ChatReply, stored: list) -> ChatReply:
    """The reply with the ids of its stored messages (customer, answer, escalation notice)."""
    reply.user_message_id = stored[0].id
    if reply.answer is not None:
        reply.assistant_message_id = stored[1].id
    if reply.ticket is not None:
        reply.notice_message_id = stored[-1].id
    return reply


def escalation_notice(ticket: Ticket) -> str:
    """What the customer is told after escalation: ticket number, priority and pickup delay."""
    priority = Priority(ticket.priority)
    delay = f"{SLA_HOURS[priority]} h"
    return (
        f"📨 Votre demande a été transmise à un conseiller (ticket n° {ticket.id}, priorité "
        f"{PRIORITY_LABELS[priority].lower()}). Elle sera prise en charge sous {delay} au plus tard ; "
        "la réponse apparaîtra dans cette conversation. Vous pouvez continuer à poser vos questions "
        "en attendant."
    )


class ChatService:
    """Orchestrates a customer conversation over the answer engine, storage and tickets."""

    def __init__(self, db: Database, engine: AnswerEngine, tickets: TicketService, max_chars: int = 1000) -> None:
        self.db = db
        self.engine = engine
        self.tickets = tickets
        self.max_chars = max_chars
        self.idempotency = IdempotencyRepository(db)
        self.sends = SendGuard()
        self.customers = CustomerRepository(db)
        self.conversations = ConversationRepository(db)
        self.messages = MessageRepository(db)
        self.feedback_repo = FeedbackRepository(db)

    def start(self, contact: Contact, context: dict | None = None, channel: str = "web") -> ChatSession:
        """Find (or create) the customer by phone and open a conversation that keeps the contact as given.

        The stored customer is never rewritten by a form: the name and e-mail typed this time stay
        on the conversation, where agents see them (and a phone used with another name is flagged).
        """
        customer_id, conversation_id = self.conversations.open_for_contact(
            (contact.full_name, contact.phone, contact.email), channel=channel, context=context
        )
        log.info("conversation %s started (channel=%s)", conversation_id, channel)
        return ChatSession(customer_id, conversation_id)

    async def start_async(self, contact: Contact, turns: AsyncTurnRepository) -> ChatSession:
        """``start`` on the server's event loop (an API opening on PostgreSQL, channel ``api``): the new conversation
        is remembered by ``turns``, so that its first turn does not read it."""
        customer_id, opened = await turns.open_for_contact(
            (contact.full_name, contact.phone, contact.email), "api", HISTORY_WINDOW
        )
        log.info("conversation %s started (channel=api)", opened.conversation.id)
        return ChatSession(customer_id, opened.conversation.id)

    def join(self, contact: Contact, conversation_id: str) -> ChatSession:
        """Attach a contact form to a conversation opened without a customer (a Mastodon post's) and its ticket."""
        customer = self.customers.get_or_create(contact.full_name, contact.phone, contact.email)
        self.conversations.attach_customer(
            conversation_id, customer.id, (contact.full_name, contact.phone, contact.email)
        )
        ticket = self.tickets.for_conversation(conversation_id)
        if ticket is not None and ticket.customer_id is None:
            self.tickets.attach_customer(ticket.id, customer.id)
        log.info("conversation %s joined by its customer", conversation_id)
        return ChatSession(customer.id, conversation_id)

    def discard_empty(self, session: ChatSession) -> None:
        """Forget a conversation just opened whose first message could not be stored (best effort)."""
        try:
            self.conversations.delete_if_empty(session.conversation_id)
        except Exception:  # the caller reports its own error; an empty conversation is harmless
            log.warning("could not discard empty conversation %s", session.conversation_id, exc_info=True)

    def clean_message(self, text: str | None) -> str:
        """Validate a customer message; raise MessageError with a French explanation."""
        text = strip_control_chars(text).strip()
        if not text:
            raise MessageError("Votre message est vide : écrivez votre question avant d'envoyer.")
        if len(text) > self.max_chars:
            raise MessageError(
                f"Votre message est trop long ({len(text)} caractères, maximum {self.max_chars}). "
                "Merci de le raccourcir ou de l'envoyer en plusieurs fois."
            )
        return text

    def _check(self, session: ChatSession) -> None:
        conversation = self.conversations.get(session.conversation_id)
        if conversation is None or conversation.customer_id != session.customer_id:
            raise PermissionError("conversation does not belong to this session")

    def send(self, session: ChatSession, text: str, idempotency: Idempotency | None = None) -> ChatReply:
        """Answer the customer message (unless an agent holds the conversation) and store the turn, escalating if needed."""
        return last_item(self.send_stream(session, text, idempotency))

    def send_stream(
        self, session: ChatSession, text: str, idempotency: Idempotency | None = None
    ) -> Iterator[str | ChatReply]:
        """Like send(), but yield the growing answer text first; the last item is the stored ChatReply.

        One read before answering: the conversation, its latest messages and, with ``idempotency``, the
        response a first call with that key stored (AlreadyAnswered). One write transaction after: the
        customer message, the answer, an escalation's ticket and notice and the idempotency record are
        stored together or not at all.
        """
        received_at = utcnow()
        text = self.clean_message(text)
        read = self.conversations.get_with_recent(session.conversation_id, HISTORY_WINDOW, _claimed(idempotency))
        session, conversation, earlier = self._accept(session, read)
        if self._may_skip_engine(conversation):
            settled, answer = self._without_engine(conversation, text)
            if settled:
                yield self._store_turn(session, text, received_at, answer, idempotency)
                return
        previous, last_question = _answer_context(earlier)
        answer = None
        for item in self.engine.stream_answer(text, previous_top_entries=previous, previous_question=last_question,
                                              history=_recent_turns(earlier, self.engine.config.llm.history_turns)):
            if isinstance(item, str):
                yield item
            else:
                answer = item
        yield self._store_turn(session, text, received_at, answer, idempotency)

    async def send_async(
        self, session: ChatSession, text: str, idempotency: Idempotency | None,
        turns: AsyncTurnRepository | SqliteTurnRepository,
    ) -> ChatReply:  # fmt: skip
        """``send`` on the server's event loop (the API's chat turn), same phases and results.

        The turn's read and write are awaited on ``turns`` and an extractive answer on the answer
        workers, so no thread is held while they run; on PostgreSQL so are an escalation's first ticket
        (opened with the turn, in one transaction) and its repeats (the open ticket marked by the turn's statement).
        The rest goes to a thread of the server's pool, as the whole turn did before: an agent-held
        conversation, an accepted ticket offer, a ticket to raise or reopen, webhooks to write.

        On PostgreSQL the read may be the one ``turns`` remembers from this process' last write there: if the
        conversation changed since (StaleTurn: nothing was written), the turn is answered again from a fresh read.
        """
        try:
            return await self._send_async(session, text, idempotency, turns, fresh=False)
        except StaleTurn:  # the conversation changed since this process last wrote it: the turn again, read afresh
            return await self._send_async(session, text, idempotency, turns, fresh=True)

    async def _send_async(
        self, session: ChatSession, text: str, idempotency: Idempotency | None,
        turns: AsyncTurnRepository | SqliteTurnRepository, fresh: bool,
    ) -> ChatReply:  # fmt: skip
        from anyio.to_thread import run_sync

        received_at = utcnow()
        text = self.clean_message(text)
        read = await turns.get_with_recent(session.conversation_id, HISTORY_WINDOW, _claimed(idempotency), fresh=fresh)
        session, conversation, earlier = self._accept(session, read)
        if self._may_skip_engine(conversation):
            settled, answer = await run_sync(self._without_engine, conversation, text)
            if settled:
                return await run_sync(self._store_turn, session, text, received_at, answer, idempotency)
        previous, last_question = _answer_context(earlier)
        answer = await self.engine.answer_async(text, previous, last_question,
                                                _recent_turns(earlier, self.engine.config.llm.history_turns))  # fmt: skip
        rows = _turn_rows(text, received_at, answer)
        if not answer.needs_escalation:
            reply, record = self._turn_reply(answer, idempotency)
            write = turns.append_turn(session.conversation_id, rows, record, seen=read)
            return _with_ids(reply, await _stored_once(turns, idempotency, write))
        repeat = self.tickets.is_repeat(read.ticket, answer.priority or "LOW")
        if read.stamp is not None and read.stamp.remembered and not repeat:
            # A ticket to open or raise is decided on the conversation as stored (a repeat's statement checks its ticket).
            stored = await turns.get_with_recent(session.conversation_id, HISTORY_WINDOW, _claimed(idempotency), fresh=True)
            if (stored.conversation, stored.recent) != (read.conversation, read.recent):
                raise StaleTurn(session.conversation_id)  # not what the answer was computed from
            read = stored
            session, conversation, earlier = self._accept(session, read)
            repeat = self.tickets.is_repeat(read.ticket, answer.priority or "LOW")
        if not turns.ticket_writes:  # SQLite: the ticket service stores an escalating turn with its ticket
            return await run_sync(self._store_turn, session, text, received_at, answer, idempotency)
        if repeat:  # the usual repeat: the open ticket is marked
            reply, record = self._turn_reply(answer, idempotency, read.ticket)
            write = turns.append_turn(session.conversation_id, _with_notice(rows, reply), record, repeat=read.ticket,
                                      seen=read)  # fmt: skip
            if (stored := await _stored_once(turns, idempotency, write)) is not None:
                self._escalated(session, read.ticket, ["conversation.escalated"])
                return _with_ids(reply, stored)
        elif read.ticket is None and self.tickets.outbox is None:  # the first escalation: the ticket opens here
            category, priority, summary = self._ticket_fields(answer, text)
            values, body = self.tickets.new_ticket(category, priority, summary, self.tickets.clock())
            replies: list[ChatReply] = []

            def turn(ticket: Ticket) -> tuple[list[dict], dict | None]:
                reply, record = self._turn_reply(answer, idempotency, ticket)
                replies.append(reply)
                return _with_notice(rows, reply), record

            write = turns.append_turn_opening_ticket(session.conversation_id, session.customer_id, values, body, turn)
            if (opened := await _stored_once(turns, idempotency, write)) is not None:
                ticket, stored = opened
                # Listeners may write (the social monitor links a post's ticket): in a thread.
                await run_sync(self._escalated, session, ticket, ["ticket.created", "conversation.escalated"])
                return _with_ids(replies[-1], stored)
        # A ticket to raise or reopen (or changed since the read, or webhooks to write): the ticket service, in a thread.
        return await run_sync(self._store_turn, session, text, received_at, answer, idempotency)

    def _accept(
        self, session: ChatSession, read: TurnRead
    ) -> tuple[ChatSession, ConversationHead, list[RecentMessage]]:
        """The turn's read checked: the session's own conversation, and not a retry of a stored call."""
        conversation, earlier, replay = read.conversation, read.recent, read.replay
        if conversation is None or session.customer_id not in (None, conversation.customer_id):
            raise PermissionError("conversation does not belong to this session")
        if replay is not None:  # a retry of a call already stored: nothing is answered or stored again
            raise AlreadyAnswered(replay.response, replay.request_hash)
        return ChatSession(conversation.customer_id, conversation.id), conversation, earlier

    @staticmethod
    def _may_skip_engine(conversation: ConversationHead) -> bool:
        """Whether the turn may be settled without the engine (no database read needed to tell it may not)."""
        return conversation.status == "agent" or bool((conversation.context or {}).get(TICKET_OFFER_KEY))

    def _without_engine(self, conversation: ConversationHead, text: str) -> tuple[bool, Answer | None]:
        """(True, answer) when the turn is settled without the engine: an agent holds the conversation (no
        answer) or the customer accepts the ticket offered on joining (an answer that escalates)."""
        if conversation.status == "agent":
            return True, None
        accepted = self._offer_accepted(conversation, text)
        return accepted is not None, accepted

    def claim(self, session: ChatSession, text: str) -> Callable[..., None]:
        """Mark `text` as being sent in the session's conversation; call the returned function when done.

        Raises DuplicateMessage when the same text is already on its way there (or was sent a
        moment ago): a double click (or Enter then click) in the chat tab is answered and stored once.
        """
        return self.sends.claim(session.conversation_id, text)

    def _store_turn(
        self, session: ChatSession, text: str, received_at, answer: Answer | None, idempotency: Idempotency | None
    ) -> ChatReply:
        """Write the turn in one transaction; without an answer (an agent has the conversation) only the message."""
        rows = _turn_rows(text, received_at, answer)
        for attempt in range(2):
            try:
                return self._write_turn(session, text, rows, answer, idempotency)
            except IntegrityError:
                if idempotency is not None:
                    first = self.idempotency.get(idempotency.scope, idempotency.key)
                    if first is not None:  # a concurrent retry won: nothing of this call was stored
                        raise AlreadyAnswered(first.response, first.request_hash) from None
                if attempt:  # a concurrent escalation created the ticket first: the retry reuses it
                    raise
        raise AssertionError("unreachable")

    def _write_turn(
        self, session: ChatSession, text: str, rows: list[dict], answer: Answer | None, idempotency: Idempotency | None
    ) -> ChatReply:
        """Store the turn at once: a write transaction when the answer escalates (the ticket first, its
        notice names it), else a single statement (``append_turn``; one round trip on PostgreSQL)."""
        if answer is None or not answer.needs_escalation:
            with self.db.write_statement() as connection:
                return self._append_turn(connection, session, rows, answer, idempotency)
        with self.db.write_connection() as connection:
            ticket, events = self._escalate(connection, session, answer, text)
            reply = self._append_turn(connection, session, rows, answer, idempotency, ticket)
        self._escalated(session, ticket, events)
        return reply

    def _escalated(self, session: ChatSession, ticket: Ticket, events: list[str]) -> None:
        """An escalation was committed: tell the ticket's listeners."""
        self.tickets.publish(events, ticket)
        log.info("conversation %s escalated to ticket %s (%s)", session.conversation_id, ticket.id, ticket.priority)

    @staticmethod
    def _append_turn(connection: Connection, session: ChatSession, rows: list[dict], answer: Answer | None,
                     idempotency: Idempotency | None, ticket: Ticket | None = None) -> ChatReply:  # fmt: skip
        """The turn's messages (and an escalation's notice) with the idempotency record."""
        reply, record = ChatService._turn_reply(answer, idempotency, ticket)
        return _with_ids(reply, append_turn(connection, session.conversation_id, _with_notice(rows, reply), record))

    @staticmethod
    def _turn_reply(
        answer: Answer | None, idempotency: Idempotency | None, ticket: Ticket | None = None
    ) -> tuple[ChatReply, dict | None]:
        """The reply (its message ids still 0) and the idempotency record that keeps its response for a retry.

        The response is rendered before the messages are stored: it names no message id."""
        reply = ChatReply(0, answer, None, notice=None if answer is not None else AGENT_HANDLES_TEXT)
        if ticket is not None:
            reply.ticket, reply.notice = ticket, escalation_notice(ticket)
        record = None
        if idempotency is not None:
            record = {"scope": idempotency.scope, "key": idempotency.key, "request_hash": idempotency.request_hash,
                      "response": idempotency.render(reply)}  # fmt: skip
        return reply, record

    def _offer_accepted(self, conversation, text: str) -> Answer | None:
        """A "oui" to the ticket offered on joining a Mastodon post: an answer that escalates at the post's priority."""
        priority = (conversation.context or {}).get(TICKET_OFFER_KEY)
        if not priority or not _YES.match(text) or self.tickets.for_conversation(conversation.id) is not None:
            return None
        return Answer(text=OFFER_ACCEPTED_TEXT, intent="réclamation", confidence=1.0, needs_escalation=True,
                      escalation_reasons=["suivi demandé après une publication Mastodon"], priority=priority)  # fmt: skip

    def _escalate(self, connection: Connection, session: ChatSession, answer: Answer, text: str) -> tuple[Ticket, list[str]]:
        """Open (or reuse) the conversation's ticket inside the turn's transaction."""
        category, priority, summary = self._ticket_fields(answer, text)
        return self.tickets.escalate_within(connection, conversation_id=session.conversation_id,
                                            customer_id=session.customer_id, category=category, priority=priority,
                                            summary=summary)  # fmt: skip

    @staticmethod
    def _ticket_fields(answer: Answer, text: str) -> tuple[str, str, str]:
        """The category, priority and summary of the ticket an escalating answer opens."""
        reasons = ", ".join(answer.escalation_reasons)
        excerpt = text if len(text) <= 300 else text[:297] + "…"
        summary = f"{reasons} — intention : {answer.intent}. Dernier message : « {excerpt} »"
        category = answer.intent if answer.intent in TICKET_CATEGORIES else _TICKET_CATEGORY_OF.get(answer.intent, "général")
        return category, answer.priority or "LOW", summary

    def history(self, session: ChatSession) -> list[Message]:
        """Messages of the session's own conversation, oldest first."""
        self._check(session)
        return self.messages.list(session.conversation_id)

    def new_messages(self, session: ChatSession, after_id: int = 0) -> list[Message]:
        """What the agent side wrote to the session's own conversation after message ``after_id``.

        Agent replies and the notices left by the ticket desk (taken, resolved, released), oldest
        first; the customer's own turns and the bot's answers are already on their screen.
        """
        self._check(session)
        latest = self.messages.list_after(session.conversation_id, after_id, roles=("agent", "system"))
        return [m for m in latest if m.role == "agent" or (m.meta or {}).get("notice")]

    def ticket_to_rate(self, session: ChatSession) -> Ticket | None:
        """The conversation's resolved ticket still waiting for a satisfaction score, if any."""
        self._check(session)
        ticket = self.tickets.for_conversation(session.conversation_id)
        if ticket is None or ticket.customer_id != session.customer_id or ticket.csat is not None:
            return None
        return ticket if ticket.resolved_at is not None and ticket.status in ("RESOLVED", "CLOSED") else None

    def rate_ticket(self, session: ChatSession, ticket_id: int, score: int) -> Ticket:
        """Store a 1-5 satisfaction score on one of the session customer's resolved tickets (RatingError else)."""
        self._check(session)
        return self.tickets.rate(ticket_id, session.customer_id, score)

    def feedback(self, session: ChatSession, message_id: int, liked: bool, comment: str | None = None) -> None:
        """Record a thumbs up/down (and optional comment) on one of the session's bot answers."""
        self._check(session)
        comment = strip_control_chars(comment).strip()[: self.max_chars] or None
        self.feedback_repo.record(message_id, session.conversation_id, 1 if liked else -1, comment)
