"""ChatService over a real SQLite database, the shipped KB and the ticket service."""

from __future__ import annotations

import pytest

from rag.chat import AGENT_HANDLES_TEXT, ChatSession, MessageError
from rag.contact import validate_contact
from tickets import TicketService

JEAN = validate_contact("Jean Dupont", "06 12 34 56 78", "jean@exemple.fr")


@pytest.fixture
def session(chat_service) -> ChatSession:
    return chat_service.start(JEAN, context={"source": "test"})


def test_start_creates_customer_and_conversation(chat_service, session: ChatSession) -> None:
    customer = chat_service.customers.get(session.customer_id)
    assert (customer.full_name, customer.phone, customer.email) == ("Jean Dupont", "+33612345678", "jean@exemple.fr")
    conversation = chat_service.conversations.get(session.conversation_id)
    assert conversation.customer_id == session.customer_id
    assert conversation.status == "bot" and conversation.context == {"source": "test"}

    again = chat_service.start(validate_contact("Jean Dupont", "+33 6 12 34 56 78"))
    assert again.customer_id == session.customer_id  # same phone, same customer
    assert again.conversation_id != session.conversation_id


def test_a_form_with_someone_elses_phone_never_rewrites_their_identity(chat_service, session: ChatSession) -> None:
    """Finding 2 of issue 12: same phone, other name and e-mail -> the stored customer is unchanged."""
    intruder = chat_service.start(validate_contact("Mallory Intrus", "06 12 34 56 78", "mallory@evil.example"))

    customer = chat_service.customers.get(session.customer_id)
    assert (customer.full_name, customer.email) == ("Jean Dupont", "jean@exemple.fr")
    own = chat_service.conversations.get(session.conversation_id)
    other = chat_service.conversations.get(intruder.conversation_id)
    assert (own.contact_name, own.contact_phone, own.contact_email) == ("Jean Dupont", "+33612345678", "jean@exemple.fr")
    assert (other.contact_name, other.contact_phone, other.contact_email) == (
        "Mallory Intrus",
        "+33612345678",
        "mallory@evil.example",
    )


def test_send_stores_user_and_assistant_messages_with_meta(chat_service, session: ChatSession) -> None:
    reply = chat_service.send(session, "Comment télécharger ma facture ?")
    assert reply.answer.top_entry == "fac-001" and reply.ticket is None and reply.notice is None
    user, assistant = chat_service.history(session)
    assert (user.id, user.role, user.content) == (reply.user_message_id, "user", "Comment télécharger ma facture ?")
    assert (assistant.id, assistant.role, assistant.content) == (
        reply.assistant_message_id,
        "assistant",
        reply.answer.text,
    )
    assert assistant.meta["top_entry"] == "fac-001"
    assert assistant.meta["intent"] == "facturation"
    assert assistant.meta["sources"][0]["id"] == "fac-001"
    assert "text" not in assistant.meta


@pytest.mark.parametrize("text", ["", "   ", None, "\x00\x07 \n"])
def test_empty_message_is_refused_and_nothing_stored(chat_service, session: ChatSession, text) -> None:
    with pytest.raises(MessageError, match="Votre message est vide"):
        chat_service.send(session, text)
    assert chat_service.history(session) == []


def test_oversized_message_is_refused_and_nothing_stored(chat_service, session: ChatSession) -> None:
    with pytest.raises(MessageError, match=r"trop long \(1001 caractères, maximum 1000\)"):
        chat_service.send(session, "a" * 1001)
    assert chat_service.history(session) == []


def test_control_characters_are_stripped_and_html_kept_as_typed(chat_service, session: ChatSession) -> None:
    chat_service.send(session, "ma fac\x00ture\x1b pdf")
    chat_service.send(session, "<b>facture</b> <script>alert(1)</script>")
    contents = [m.content for m in chat_service.history(session) if m.role == "user"]
    assert contents == ["ma facture pdf", "<b>facture</b> <script>alert(1)</script>"]


def test_escalation_opens_one_ticket_per_conversation(chat_service, session: ChatSession) -> None:
    first = chat_service.send(session, "Je veux résilier mon forfait")
    ticket = first.ticket
    assert ticket is not None
    assert ticket.category == "résiliation" and ticket.priority == "MEDIUM"
    assert ticket.conversation_id == session.conversation_id and ticket.customer_id == session.customer_id
    assert "demande de résiliation" in ticket.summary and "Je veux résilier mon forfait" in ticket.summary
    assert f"ticket n° {ticket.id}" in first.notice
    assert chat_service.conversations.get(session.conversation_id).status == "escalated"
    assert "Résilier mon forfait" in first.answer.text

    second = chat_service.send(session, "VOUS ÊTES DES ESCROCS, C'EST INADMISSIBLE !!!")
    assert second.ticket.id == ticket.id  # reused, not duplicated
    assert second.ticket.priority == "HIGH"  # raised by the angrier message
    tickets = TicketService(chat_service.tickets.db).list_for_customer(session.customer_id)
    assert [t.id for t in tickets] == [ticket.id]
    system = [m for m in chat_service.history(session) if m.role == "system"]
    assert [m.meta["ticket_id"] for m in system] == [ticket.id, ticket.id]
    assert system[0].id == first.notice_message_id


def test_conversation_held_by_agent_gets_no_bot_answer(chat_service, session: ChatSession) -> None:
    chat_service.conversations.set_status(session.conversation_id, "agent")
    reply = chat_service.send(session, "Vous êtes toujours là ?")
    assert reply.answer is None and reply.assistant_message_id is None and reply.notice == AGENT_HANDLES_TEXT
    (message,) = chat_service.history(session)
    assert (message.role, message.content) == ("user", "Vous êtes toujours là ?")


def test_other_customers_cannot_read_or_rate(chat_service, session: ChatSession) -> None:
    reply = chat_service.send(session, "Comment obtenir mon code RIO ?")
    intruder = chat_service.start(validate_contact("Marie Curie", "07 11 22 33 44"))
    forged = ChatSession(intruder.customer_id, session.conversation_id)
    with pytest.raises(PermissionError):
        chat_service.history(forged)
    with pytest.raises(PermissionError):
        chat_service.feedback(forged, reply.assistant_message_id, liked=False)
    with pytest.raises(PermissionError):
        chat_service.send(forged, "je lis vos messages")
    with pytest.raises(PermissionError):
        chat_service.history(ChatSession(session.customer_id, "no-such-conversation"))
    assert len(chat_service.history(session)) == 2  # the forged send stored nothing


def test_feedback_only_on_own_assistant_messages(chat_service, session: ChatSession) -> None:
    reply = chat_service.send(session, "Comment obtenir mon code RIO ?")
    with pytest.raises(ValueError, match="only assistant messages"):
        chat_service.feedback(session, reply.user_message_id, liked=True)
    other = chat_service.start(validate_contact("Marie Curie", "07 11 22 33 44"))
    other_reply = chat_service.send(other, "bonjour")
    with pytest.raises(ValueError, match="does not belong"):
        chat_service.feedback(session, other_reply.assistant_message_id, liked=True)


def test_feedback_upsert(chat_service, session: ChatSession) -> None:
    from sqlalchemy import select

    from storage import Feedback

    reply = chat_service.send(session, "Comment obtenir mon code RIO ?")
    chat_service.feedback(session, reply.assistant_message_id, liked=True, comment="  top\x00 ")
    chat_service.feedback(session, reply.assistant_message_id, liked=False, comment="finalement non")
    with chat_service.tickets.db.session() as s:
        rows = s.scalars(select(Feedback).where(Feedback.message_id == reply.assistant_message_id)).all()
    assert [(r.rating, r.comment, r.conversation_id) for r in rows] == [(-1, "finalement non", session.conversation_id)]


def test_a_key_proven_session_takes_the_customer_from_the_conversation(chat_service, session: ChatSession) -> None:
    """The API proves access with the conversation key and skips a read: the send resolves the customer."""
    keyed = ChatSession(None, session.conversation_id)
    reply = chat_service.send(keyed, "Je veux résilier mon forfait")
    assert reply.ticket.customer_id == session.customer_id
    assert [m.role for m in chat_service.history(session)] == ["user", "assistant", "system"]
    with pytest.raises(PermissionError):  # anything else still needs the customer
        chat_service.history(keyed)
    with pytest.raises(PermissionError):
        chat_service.send(ChatSession(None, "0" * 32), "Bonjour")
