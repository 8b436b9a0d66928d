"""Agent console formatting: each ticket's own contact, the shared-phone flag, escaped customer/Mastodon text."""

from __future__ import annotations

from rag.chat import ChatService
from rag.contact import validate_contact
from storage import ConversationRepository, MessageRepository
from storage.models import utcnow
from tickets import TicketService
from ui import tickets_format as fmt

HOSTILE = "<img src=x onerror=alert(1)> [Cliquez ici](https://evil.example/phish) ![t](https://evil.example/t.png)"


def _ticket(tickets: TicketService, conversation_id: str, summary: str = "résumé") -> int:
    return tickets.open_ticket(
        conversation_id=conversation_id, customer_id=None, category="facturation", priority="LOW", summary=summary
    ).id


def test_each_ticket_card_shows_its_own_contact_and_flags_the_shared_phone(db) -> None:
    tickets = TicketService(db)
    chat = ChatService(db, engine=None, tickets=tickets)
    alice = chat.start(validate_contact("Alice Martin", "06 12 34 56 78", "alice@example.fr"))
    mallory = chat.start(validate_contact("Mallory Intrus", "06 12 34 56 78", "mallory@evil.example"))
    alone = chat.start(validate_contact("Bruno Petit", "07 98 76 54 32"))

    alice_card = fmt.customer_markdown(tickets.detail(_ticket(tickets, alice.conversation_id)))
    mallory_detail = tickets.detail(_ticket(tickets, mallory.conversation_id))
    mallory_card = fmt.customer_markdown(mallory_detail)
    alone_card = fmt.customer_markdown(tickets.detail(_ticket(tickets, alone.conversation_id)))

    assert "Alice Martin" in alice_card and "alice@example\\.fr" in alice_card and "Mallory" in alice_card
    assert "Mallory Intrus" in mallory_card and "mallory@evil\\.example" in mallory_card
    assert "alice@example" not in mallory_card  # the intruder's ticket does not show the victim's e-mail
    assert fmt.SHARED_PHONE_WARNING in alice_card and fmt.SHARED_PHONE_WARNING in mallory_card
    assert fmt.SHARED_PHONE_WARNING == "⚠️ ce numéro a été utilisé avec un autre nom"
    assert fmt.SHARED_PHONE_WARNING not in alone_card
    assert fmt.first_name(mallory_detail) == "Mallory"


def test_mastodon_and_customer_text_is_escaped_in_the_ticket_view(db) -> None:
    tickets = TicketService(db)
    conversation = ConversationRepository(db).create(channel="mastodon", context={"handle": "@m@evil.example"})
    MessageRepository(db).add(conversation.id, "user", HOSTILE, meta={"source": "mastodon"})
    ticket_id = _ticket(tickets, conversation.id, summary=f"Mastodon @m@evil.example : {HOSTILE}")
    tickets.add_note(ticket_id, "paul", HOSTILE)
    detail = tickets.detail(ticket_id)

    shown = [
        fmt.detail_header(detail, utcnow()),
        fmt.events_markdown(detail.events),
        *(m["content"] for m in fmt.conversation_messages(detail.messages)),
    ]
    for text in shown:
        if "evil" not in text:
            continue
        assert "<img" not in text and "](https://evil" not in text and "![" not in text, text
        assert "&lt;img src\\=x onerror\\=alert\\(1\\)&gt;" in text, text
