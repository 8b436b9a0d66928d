"""Agent console: an action's message stays until the agent's next action (not wiped by the refresh that follows it)."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from storage import ConversationRepository, CustomerRepository
from tickets import TicketService
from tickets.users import StaffService
from ui.tickets_tab import TicketsConsole, create_tickets_tab

SKIP = type(gr.skip())
# status, priority, category, assignee, SLA breached only, sort, page: the queue's inputs after the principal
FILTERS = ("", "", "", "", False, "sla", 1)


@pytest.fixture
def console(db) -> tuple[TicketsConsole, object, int]:
    staff = StaffService(db)
    principal = staff.open_session(staff.create_user("lea", "correct-horse-42", "agent"))
    tickets = TicketService(db)
    customer = CustomerRepository(db).get_or_create("Alice Martin", "+33612345678")
    conversation = ConversationRepository(db).create(customer_id=customer.id)
    ticket = tickets.open_ticket(conversation_id=conversation.id, customer_id=customer.id, category="facturation",
                                 priority="MEDIUM", summary="facture contestée")  # fmt: skip
    return TicketsConsole(SimpleNamespace(tickets=tickets, staff=staff)), principal, ticket.id


def test_the_reply_message_survives_the_refreshes_that_follow_it(console) -> None:
    cb, principal, ticket_id = console
    *_, reply_box, message = cb.reply(principal, ticket_id, "Bonjour Alice, je regarde votre facture.")
    assert reply_box == "" and message == "✅ Réponse envoyée dans le chat du client."
    # What runs after an action and on the timer: the queue and the open ticket again, the message untouched.
    _rows, info, page, message = cb.requeue(principal, *FILTERS)
    assert isinstance(message, SKIP) and page == 1 and "1 ticket" in info
    assert isinstance(cb.reload(principal, ticket_id)[-1], SKIP)
    # The agent's own refresh (filters, pages, the button) starts afresh.
    assert cb.queue(principal, *FILTERS)[-1] == ""


def test_a_refused_refresh_still_says_why(console) -> None:
    cb, _, _ = console
    assert cb.requeue(None, *FILTERS)[-1].startswith("🔒")


def test_the_refresh_after_an_action_and_on_the_timer_keeps_the_message(db) -> None:
    """The wiring: the queue refresh chained after each action, and the timer's, is ``requeue``."""
    services = SimpleNamespace(tickets=TicketService(db), staff=StaffService(db))
    with gr.Blocks() as demo:
        parts = create_tickets_tab(services, gr.State(None))
    fns = demo.fns
    after = {fns[dep.trigger_after].fn.__name__: dep.fn.__name__ for dep in fns.values() if dep.trigger_after is not None}
    actions = ("take", "assign", "set_status", "release", "reply")
    assert {action: after[action] for action in actions} == dict.fromkeys(actions, "requeue")
    ticks = [dep.fn.__name__ for dep in fns.values() if (parts["timer"]._id, "tick") in dep.targets]
    assert ticks == ["requeue"] and after["requeue"] == "reload"
    assert after["options"] == "queue"  # a login starts with a clean message
