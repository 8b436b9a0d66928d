"""Agent console service: queue filters/sorting/paging in SQL, ticket detail, replies, release and CSAT."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from rag.chat import AGENT_HANDLES_TEXT, ChatSession
from rag.contact import validate_contact
from storage import ConversationRepository, CustomerRepository, MessageRepository, NotFoundError
from tickets import UNASSIGNED, InvalidTransition, QueueFilters, RatingError, TicketService
from tickets.canned import CANNED_REPLIES, canned_reply

T0 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)

pytestmark = pytest.mark.all_backends


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def service(db, clock) -> TicketService:
    return TicketService(db, clock=clock)


def make_ticket(db, service, clock, phone, priority, category="facturation", minutes_later=0, name="Client Test"):
    clock.now += timedelta(minutes=minutes_later)
    customer = CustomerRepository(db).get_or_create(name, phone, "client@example.fr")
    conversation = ConversationRepository(db).create(customer_id=customer.id)
    return service.open_ticket(
        conversation_id=conversation.id, customer_id=None, category=category, priority=priority, summary="résumé"
    )


@pytest.fixture
def four(db, service, clock):
    """URGENT (due 10:00), HIGH (due 13:05), MEDIUM technique, LOW; created 5 minutes apart."""
    urgent = make_ticket(db, service, clock, "+33600000001", "URGENT", name="Alice Martin")
    high = make_ticket(db, service, clock, "+33600000002", "HIGH", minutes_later=5)
    medium = make_ticket(db, service, clock, "+33600000003", "MEDIUM", "technique", minutes_later=5)
    low = make_ticket(db, service, clock, "+33600000004", "LOW", minutes_later=5)
    service.assign(high.id, "paul", actor="admin")
    return urgent, high, medium, low


def ids(page) -> list[int]:
    return [row.id for row in page.rows]


def test_filters(service, clock, four) -> None:
    urgent, high, medium, low = four
    service.transition(low.id, "RESOLVED", actor="paul")

    assert set(ids(service.list_queue(QueueFilters()))) == {t.id for t in four}
    assert ids(service.list_queue(QueueFilters(status="RESOLVED"))) == [low.id]
    assert ids(service.list_queue(QueueFilters(priority="high"))) == [high.id]
    assert ids(service.list_queue(QueueFilters(category="technique"))) == [medium.id]
    assert ids(service.list_queue(QueueFilters(assignee="paul"))) == [high.id]
    assert set(ids(service.list_queue(QueueFilters(assignee=UNASSIGNED)))) == {urgent.id, medium.id, low.id}
    assert ids(service.list_queue(QueueFilters(status="OPEN", priority="LOW"))) == []


def test_sla_breached_filter_follows_the_clock(service, clock, four) -> None:
    urgent, high, *_ = four
    clock.now = T0 + timedelta(hours=1)  # URGENT due exactly now: not yet breached
    assert ids(service.list_queue(QueueFilters(breached=True))) == []

    clock.now = T0 + timedelta(hours=5)  # URGENT (10:00) and HIGH (13:05) are late
    page = service.list_queue(QueueFilters(breached=True))
    assert ids(page) == [urgent.id, high.id]
    assert all(row.breached for row in page.rows)
    assert [r.breached for r in service.list_queue(QueueFilters()).rows] == [True, True, False, False]

    service.transition(urgent.id, "RESOLVED", actor="paul")  # finished tickets are never late
    assert ids(service.list_queue(QueueFilters(breached=True))) == [high.id]


def test_sorting(service, four) -> None:
    urgent, high, medium, low = four
    by_id = [t.id for t in four]
    assert ids(service.list_queue(QueueFilters(sort="sla"))) == by_id
    assert ids(service.list_queue(QueueFilters(sort="sla", descending=True))) == by_id[::-1]
    assert ids(service.list_queue(QueueFilters(sort="priority"))) == [urgent.id, high.id, medium.id, low.id]
    assert ids(service.list_queue(QueueFilters(sort="priority", descending=True))) == [
        low.id,
        medium.id,
        high.id,
        urgent.id,
    ]
    assert ids(service.list_queue(QueueFilters(sort="created", descending=True))) == by_id[::-1]
    with pytest.raises(ValueError):
        service.list_queue(QueueFilters(sort="name"))  # type: ignore[arg-type]


def test_pagination_is_done_in_two_sql_statements(db, service, clock) -> None:
    made = [make_ticket(db, service, clock, f"+3360000010{i}", "LOW", minutes_later=1).id for i in range(5)]
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    first = service.list_queue(QueueFilters(sort="created", page=1, page_size=2))

    assert (first.total, first.pages, first.page, ids(first)) == (5, 3, 1, made[:2])
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 2
    assert any("LIMIT" in s.upper() and "OFFSET" in s.upper() for s in statements)
    assert ids(service.list_queue(QueueFilters(sort="created", page=3, page_size=2))) == made[4:]
    last = service.list_queue(QueueFilters(sort="created", page=99, page_size=2))
    assert (last.page, ids(last)) == (3, made[4:])
    empty = service.list_queue(QueueFilters(status="CLOSED"))
    assert (empty.total, empty.pages, empty.rows) == (0, 1, [])


def test_detail_has_customer_conversation_and_events(db, service, clock, four) -> None:
    urgent = four[0]
    MessageRepository(db).add(urgent.conversation_id, "user", "Ma facture est fausse")
    service.add_note(urgent.id, "paul", "Vérifier la facture de mars.")

    detail = service.detail(urgent.id)

    assert detail is not None
    assert (detail.customer.full_name, detail.customer.phone, detail.customer.email) == (
        "Alice Martin",
        "+33600000001",
        "client@example.fr",
    )
    assert [(m.role, m.content) for m in detail.messages] == [("user", "Ma facture est fausse")]
    assert [e.kind for e in detail.events] == ["created", "note"]
    assert detail.conversation_status == "escalated"
    assert service.detail(424242) is None
    assert "réclamation" in service.categories() and "technique" in service.categories()


def test_each_ticket_shows_its_own_contact_and_a_shared_phone_is_flagged(db, service) -> None:
    """Finding 2 of issue 12: two forms with one phone and two names -> two contacts, a flag, no merge."""
    from rag.chat import ChatService

    chat = ChatService(db, engine=None, tickets=service)
    alice = chat.start(validate_contact("Alice Martin", "06 00 00 00 09", "alice@example.fr"))
    mallory = chat.start(validate_contact("Mallory Intrus", "06 00 00 00 09", "mallory@evil.example"))
    again = chat.start(validate_contact("alice MARTIN", "06 00 00 00 09"))  # same person, other case
    tickets = [
        service.open_ticket(conversation_id=s.conversation_id, customer_id=None, category="facturation",
                            priority="LOW", summary="résumé")
        for s in (alice, mallory, again)
    ]  # fmt: skip

    first, second, third = (service.detail(t.id) for t in tickets)
    assert (first.customer.full_name, first.customer.email) == ("Alice Martin", "alice@example.fr")
    assert (second.customer.full_name, second.customer.email) == ("Alice Martin", "alice@example.fr")
    assert (first.contact.full_name, first.contact.email) == ("Alice Martin", "alice@example.fr")
    assert (second.contact.full_name, second.contact.phone, second.contact.email) == (
        "Mallory Intrus",
        "+33600000009",
        "mallory@evil.example",
    )
    assert first.contact.other_names == ("Mallory Intrus",) and first.contact.name_conflict
    assert second.contact.other_names == ("Alice Martin",) and second.contact.name_conflict
    assert third.contact.other_names == ("Mallory Intrus",)  # case is not another name
    assert service.contact(tickets[1].id) == second.contact
    assert service.contact(424242) is None
    names = {row.id: row.customer_name for row in service.list_queue(QueueFilters()).rows}
    assert [names[t.id] for t in tickets] == ["Alice Martin", "Mallory Intrus", "alice MARTIN"]


def test_a_phone_used_with_one_name_is_not_flagged(db, service, four) -> None:
    contact = service.detail(four[0].id).contact
    assert (contact.full_name, contact.phone, contact.other_names) == ("Alice Martin", "+33600000001", ())
    assert not contact.name_conflict


def test_take_assigns_moves_and_tells_the_customer(db, service, four) -> None:
    urgent = four[0]
    taken = service.take(urgent.id, "lea")
    assert (taken.assignee, taken.status) == ("lea", "IN_PROGRESS")
    assert [e.kind for e in taken.events] == ["created", "assigned", "status"]
    assert ConversationRepository(db).get(urgent.conversation_id).status == "agent"
    notices = [m for m in MessageRepository(db).list(urgent.conversation_id) if m.role == "system"]
    assert [m.meta["notice"] for m in notices] == ["taken"]
    service.transition(urgent.id, "CLOSED", actor="lea")
    with pytest.raises(InvalidTransition, match=r"Transition impossible : CLOSED → IN_PROGRESS\."):
        service.take(urgent.id, "lea")


def test_set_status_refuses_invalid_transitions_in_french(service, four) -> None:
    low = four[3]
    service.set_status(low.id, "CLOSED", "paul")
    with pytest.raises(InvalidTransition) as error:
        service.set_status(low.id, "IN_PROGRESS", "paul")
    assert str(error.value) == "Transition impossible : CLOSED → IN_PROGRESS."
    with pytest.raises(NotFoundError):
        service.set_status(999, "CLOSED", "paul")


# --- with the real chat service ----------------------------------------------------------


def start(chat_service, name="Jeanne Dupont", phone="06 12 34 56 78") -> ChatSession:
    return chat_service.start(validate_contact(name, phone, ""))


def escalate(chat_service, session):
    reply = chat_service.send(session, "Je veux parler à un conseiller, ma facture est fausse")
    assert reply.ticket is not None
    return reply.ticket


def test_reply_hands_the_conversation_to_the_agent_and_the_bot_stops(db, chat_service) -> None:
    tickets = chat_service.tickets
    session = start(chat_service)
    ticket = escalate(chat_service, session)
    seen = max(m.id for m in chat_service.history(session))
    assert chat_service.new_messages(session, seen) == []

    message = tickets.reply_to_customer(ticket.id, "paul", "  Bonjour, je regarde votre facture.  ")

    assert (message.role, message.content) == ("agent", "Bonjour, je regarde votre facture.")
    after = tickets.get(ticket.id)
    assert (after.status, after.assignee) == ("IN_PROGRESS", "paul")
    assert [e.kind for e in after.events][-1] == "reply"
    assert ConversationRepository(db).get(session.conversation_id).status == "agent"
    assert [m.id for m in chat_service.new_messages(session, seen)] == [message.id]

    before = len(chat_service.history(session))
    reply = chat_service.send(session, "Merci, j'attends votre retour.")
    assert (reply.answer, reply.assistant_message_id, reply.notice) == (None, None, AGENT_HANDLES_TEXT)
    roles = [m.role for m in chat_service.history(session)[before:]]
    assert roles == ["user"]  # no bot answer

    tickets.release(ticket.id, "paul")
    assert ConversationRepository(db).get(session.conversation_id).status == "bot"
    released = chat_service.new_messages(session, message.id)
    assert [m.meta["notice"] for m in released] == ["released"]
    assert chat_service.send(session, "Comment télécharger ma facture ?").answer is not None


def test_reply_validation(chat_service) -> None:
    tickets = chat_service.tickets
    ticket = escalate(chat_service, start(chat_service))
    with pytest.raises(ValueError, match="vide"):
        tickets.reply_to_customer(ticket.id, "paul", "   ")
    with pytest.raises(ValueError, match="trop longue"):
        tickets.reply_to_customer(ticket.id, "paul", "x" * 5000)
    tickets.set_status(ticket.id, "CLOSED", "paul")
    with pytest.raises(ValueError, match="fermé"):
        tickets.reply_to_customer(ticket.id, "paul", "Bonjour")
    orphan = tickets.open_ticket(conversation_id=None, customer_id=None, category="x", priority="LOW", summary="s")
    with pytest.raises(ValueError, match="aucune conversation"):
        tickets.reply_to_customer(orphan.id, "paul", "Bonjour")


def test_new_messages_only_returns_the_sessions_own_conversation(chat_service) -> None:
    mine = start(chat_service)
    ticket = escalate(chat_service, mine)
    other = start(chat_service, "Bruno Petit", "07 98 76 54 32")
    chat_service.tickets.reply_to_customer(ticket.id, "paul", "Bonjour Jeanne")

    assert chat_service.new_messages(other, 0) == []
    with pytest.raises(PermissionError):
        chat_service.new_messages(ChatSession(other.customer_id, mine.conversation_id), 0)


def test_csat_rules(chat_service) -> None:
    tickets = chat_service.tickets
    session = start(chat_service)
    other = start(chat_service, "Bruno Petit", "07 98 76 54 32")
    ticket = escalate(chat_service, session)

    assert chat_service.ticket_to_rate(session) is None
    with pytest.raises(RatingError, match="une fois votre demande résolue"):
        chat_service.rate_ticket(session, ticket.id, 5)

    tickets.set_status(ticket.id, "RESOLVED", "paul")
    assert chat_service.ticket_to_rate(session).id == ticket.id
    assert [m.meta["notice"] for m in chat_service.new_messages(session, 0)] == ["resolved"]
    with pytest.raises(RatingError, match="pas le vôtre"):
        chat_service.rate_ticket(other, ticket.id, 5)
    with pytest.raises(RatingError, match="pas le vôtre"):
        tickets.rate(424242, session.customer_id, 5)
    for bad in (0, 6, True, 4.5):
        with pytest.raises(RatingError, match="de 1 à 5"):
            chat_service.rate_ticket(session, ticket.id, bad)

    rated = chat_service.rate_ticket(session, ticket.id, 5)
    assert rated.csat == 5
    assert rated.events[-1].body == "Satisfaction client : 5/5."
    assert chat_service.ticket_to_rate(session) is None
    with pytest.raises(RatingError, match="déjà noté"):
        chat_service.rate_ticket(session, ticket.id, 1)
    assert tickets.get(ticket.id).csat == 5


def test_canned_replies_are_french_and_use_kb_facts() -> None:
    keys = {reply.key for reply in CANNED_REPLIES}
    assert {"ack", "rio", "apn"} <= keys
    assert canned_reply("ack", "Jeanne").startswith("Bonjour Jeanne, ")
    assert canned_reply("ack").startswith("Bonjour, ")
    rio = canned_reply("rio")
    assert all(fact in rio for fact in ("3179", "4 mois", "1 à 3 jours ouvrés"))
    apn = canned_reply("apn")
    assert all(fact in apn for fact in ("http://mms.free.fr", "208", "15", "default,supl,mms"))
    assert all("{" not in reply.render("X") for reply in CANNED_REPLIES)
