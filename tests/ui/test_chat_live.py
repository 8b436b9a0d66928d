"""Live chat poll: agent messages appear, but never while the customer's answer is still streaming."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from rag.contact import validate_contact
from ui.chat_live import LiveCallbacks


def test_poll_waits_for_the_stream_then_shows_the_agent_reply(chat_service):
    session = chat_service.start(validate_contact("Léa Martin", "06 12 34 56 78"))
    reply = chat_service.send(session, "Je veux parler à un conseiller")
    assert reply.ticket is not None
    chat_service.tickets.take(reply.ticket.id, "a.agent")
    chat_service.tickets.reply_to_customer(reply.ticket.id, "a.agent", "Bonjour Léa, je regarde votre dossier.")
    live = LiveCallbacks(SimpleNamespace(chat=chat_service))
    history = [{"role": "user", "content": "question"}, {"role": "assistant", "content": "réponse en cou"}]

    while_streaming = live.poll(session, history, [None, None], 0, None, busy=True)
    assert all(isinstance(out, type(gr.skip())) for out in while_streaming)  # nothing overwritten mid-stream

    chat, ids, cursor, *_ = live.poll(session, history, [None, None], 0, None, busy=False)
    assert "je regarde votre dossier" in chat[-1]["content"] and len(ids) == len(chat) and cursor > 0
