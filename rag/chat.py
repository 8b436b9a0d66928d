"""Customer conversations: contact form, messages, answers, feedback and escalation to a ticket.

Everything here is plain Python over the storage repositories, so the Gradio tab, the HTTP API
and the tests share one implementation. A `ChatSession` (customer id + conversation id) is the
only thing a UI keeps per user; every call checks the message or ticket belongs to it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from rag.answer import Answer, AnswerEngine
from rag.contact import Contact
from rag.nlu import TICKET_CATEGORIES
from storage import ConversationRepository, CustomerRepository, Database, FeedbackRepository, MessageRepository
from storage.models import Message, Ticket
from tickets import PRIORITY_LABELS, SLA_HOURS, Priority, TicketService, TicketStatus
from tickets.domain import strip_control_chars

log = logging.getLogger(__name__)

AGENT_HANDLES_TEXT = (
    "Un conseiller a pris en charge votre conversation : votre message lui est transmis et il vous "
    "répondra ici même."
)
# Qualification categories of the procedure; the other intents map onto them.
_TICKET_CATEGORY_OF = {"activation": "technique", "assistance": "général"}


class MessageError(ValueError):
    """A customer message that cannot be accepted; the text is a French message for the UI."""


@dataclass(frozen=True)
class ChatSession:
    """Identifies one customer's conversation; kept in per-user UI state, never shared."""

    customer_id: int
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


def _recent_turns(messages: list[Message], turns: int) -> list[tuple[str, str]]:
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
        self.engine = engine
        self.tickets = tickets
        self.max_chars = max_chars
        self.customers = CustomerRepository(db)
        self.conversations = ConversationRepository(db)
        self.messages = MessageRepository(db)
        self.feedback_repo = FeedbackRepository(db)

    def start(self, contact: Contact, context: dict | None = None, channel: str = "web") -> ChatSession:
        """Create (or find) the customer and open a new conversation for them."""
        customer = self.customers.get_or_create(contact.full_name, contact.phone, contact.email)
        conversation = self.conversations.create(customer_id=customer.id, channel=channel, context=context)
        log.info("conversation %s started (channel=%s)", conversation.id, channel)
        return ChatSession(customer.id, conversation.id)

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

    def send(self, session: ChatSession, text: str) -> ChatReply:
        """Store the customer message, answer it (unless an agent holds the conversation), escalate if needed."""
        reply = None
        for reply in self.send_stream(session, text):  # noqa: B007 (the last item is the reply)
            pass
        return reply

    def send_stream(self, session: ChatSession, text: str) -> Iterator[str | ChatReply]:
        """Like send(), but yield the growing answer text first; the last item is the stored ChatReply."""
        text = self.clean_message(text)
        self._check(session)
        conversation = self.conversations.get(session.conversation_id)
        earlier = self.messages.list(session.conversation_id)
        previous = [m.meta["top_entry"] for m in earlier if m.role == "assistant" and m.meta and m.meta.get("top_entry")]
        last_question = next((m.content for m in reversed(earlier) if m.role == "user"), None)
        user_msg = self.messages.add(session.conversation_id, "user", text)
        if conversation.status == "agent":
            yield ChatReply(user_msg.id, None, None, notice=AGENT_HANDLES_TEXT)
            return

        answer = None
        for item in self.engine.stream_answer(text, previous_top_entries=previous, previous_question=last_question,
                                              history=_recent_turns(earlier, self.engine.config.llm.history_turns)):
            if isinstance(item, str):
                yield item
            else:
                answer = item
        meta = answer.to_dict()
        meta.pop("text")
        assistant_msg = self.messages.add(session.conversation_id, "assistant", answer.text, meta=meta)
        reply = ChatReply(user_msg.id, answer, assistant_msg.id)
        if answer.needs_escalation:
            reply.ticket = self._escalate(session, answer, text)
            reply.notice = escalation_notice(reply.ticket)
            reply.notice_message_id = self.messages.add(
                session.conversation_id, "system", reply.notice, meta={"ticket_id": reply.ticket.id}
            ).id
        yield reply

    def _escalate(self, session: ChatSession, answer: Answer, text: str) -> Ticket:
        reasons = ", ".join(answer.escalation_reasons)
        excerpt = text if len(text) <= 300 else text[:297] + "…"
        summary = f"{reasons} — intention : {answer.intent}. Dernier message : « {excerpt} »"
        ticket = self.tickets.open_ticket(
            conversation_id=session.conversation_id,
            customer_id=session.customer_id,
            category=answer.intent if answer.intent in TICKET_CATEGORIES else _TICKET_CATEGORY_OF.get(answer.intent, "général"),
            priority=answer.priority or "LOW",
            summary=summary,
        )
        if ticket.status == TicketStatus.RESOLVED:
            ticket = self.tickets.transition(ticket.id, TicketStatus.IN_PROGRESS, actor="bot")
        log.info("conversation %s escalated to ticket %s (%s)", session.conversation_id, ticket.id, ticket.priority)
        return ticket

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
