"""Ticket events: every committed change reaches the listeners (webhooks), whatever the caller."""

from __future__ import annotations

from storage import ConversationRepository, CustomerRepository
from tickets import TicketService


def test_listeners_get_created_escalated_and_updated_events(db) -> None:
    service = TicketService(db)
    events: list[tuple[str, int, str]] = []
    service.subscribe(lambda event, ticket: events.append((event, ticket.id, ticket.status)))
    customer = CustomerRepository(db).get_or_create("Léa Martin", "+33612345678")
    conversation = ConversationRepository(db).create(customer_id=customer.id)

    ticket = service.open_ticket(
        conversation_id=conversation.id,
        customer_id=customer.id,
        category="facturation",
        priority="MEDIUM",
        summary="litige",
    )
    assert events == [("ticket.created", ticket.id, "OPEN"), ("conversation.escalated", ticket.id, "OPEN")]

    events.clear()
    service.open_ticket(
        conversation_id=conversation.id,
        customer_id=customer.id,
        category="facturation",
        priority="HIGH",
        summary="relance",
    )  # same live ticket: escalated again, not created
    assert events == [("conversation.escalated", ticket.id, "OPEN")]

    events.clear()
    service.take(ticket.id, "alice")
    service.reply_to_customer(ticket.id, "alice", "Bonjour, je regarde votre facture.")
    service.set_status(ticket.id, "RESOLVED", "alice")
    assert events == [("ticket.updated", ticket.id, "IN_PROGRESS")] * 2 + [("ticket.updated", ticket.id, "RESOLVED")]


def test_a_failing_listener_never_breaks_the_change(db) -> None:
    service = TicketService(db)

    def broken(_event, _ticket):
        raise RuntimeError("receiver down")

    seen = []
    service.subscribe(broken)
    service.subscribe(lambda event, _ticket: seen.append(event))
    ticket = service.open_ticket(
        conversation_id=None, customer_id=None, category="technique", priority="LOW", summary="sans conversation"
    )
    assert seen == ["ticket.created"]
    service.unsubscribe(broken)
    assert service.add_note(ticket.id, "bob", "note").body == "note"
    assert seen == ["ticket.created", "ticket.updated"]
