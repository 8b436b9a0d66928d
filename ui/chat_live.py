"""Live part of the customer chat: agent replies and notices arrive by polling, then the CSAT rating.

A gr.Timer runs only while a conversation is open; it asks ChatService for what the agent side
wrote to this session's own conversation since the last message shown, and offers a 1-5 rating
once the conversation's ticket is resolved.
"""

from __future__ import annotations

import gradio as gr

from rag.chat import ChatSession
from tickets import RatingError
from ui.chat_format import pushed_markdown

POLL_S = 3
RATINGS = [("1 😞", 1), ("2 🙁", 2), ("3 😐", 3), ("4 🙂", 4), ("5 😀", 5)]


class LiveCallbacks:
    """Thin callbacks over ChatService.new_messages / ticket_to_rate / rate_ticket."""

    def __init__(self, services) -> None:
        self.chat = services.chat

    @staticmethod
    def toggle(session: ChatSession | None):
        """Poll only while a conversation is open; a new conversation starts without a pending rating.

        The cursor is set by whoever opens the conversation: 0 for a new one (everything the agent
        side wrote is pushed), the last message shown for one resumed with its history.
        """
        return gr.Timer(active=session is not None), None, gr.update(visible=False)

    def poll(self, session: ChatSession | None, history: list, ids: list, cursor: int, rating_ticket: int | None,
             busy: bool = False):  # fmt: skip
        """Append new agent messages and notices; show the rating widget once the ticket is resolved."""
        if session is None or busy or (history and history[-1].get("content") == "…"):  # an answer is on its way
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        fresh = self.chat.new_messages(session, cursor or 0)
        chat_out = ids_out = cursor_out = gr.skip()
        if fresh:
            chat_out = [
                *history,
                *[{"role": "assistant", "content": pushed_markdown(m.role, m.content)} for m in fresh],
            ]
            ids_out = [*ids, *[None] * len(fresh)]
            cursor_out = fresh[-1].id
        rating_out = box_out = gr.skip()
        if rating_ticket is None:
            ticket = self.chat.ticket_to_rate(session)
            if ticket is not None:
                rating_out, box_out = ticket.id, gr.update(visible=True)
        return chat_out, ids_out, cursor_out, rating_out, box_out

    def rate(self, session: ChatSession | None, ticket_id: int | None, score, history: list, ids: list):
        """Store the 1-5 score and thank the customer."""
        if session is None or ticket_id is None:
            return gr.skip(), gr.skip(), gr.skip(), "⚠️ Aucune demande à noter."
        if score is None:
            return gr.skip(), gr.skip(), gr.skip(), "⚠️ Choisissez une note de 1 à 5."
        try:
            self.chat.rate_ticket(session, int(ticket_id), int(score))
        except (RatingError, PermissionError) as exc:
            return gr.update(visible=False), gr.skip(), gr.skip(), f"⚠️ {exc}"
        thanks = f"🙏 Merci pour votre note ({int(score)}/5) ! Elle nous aide à améliorer notre service."
        return gr.update(visible=False), [*history, {"role": "assistant", "content": thanks}], [*ids, None], thanks


def create_live_updates(
    services, session: gr.State, chatbot: gr.Chatbot, ids: gr.State, status: gr.Markdown, busy: gr.State
) -> dict[str, gr.Component]:
    """Build the rating widget and the polling timer inside the current chat column."""
    cb = LiveCallbacks(services)
    cursor, rating_ticket = gr.State(0), gr.State(None)
    with gr.Column(visible=False, elem_id="rating-box", variant="panel") as box:
        gr.Markdown("### ⭐ Votre demande est résolue : qu'avez-vous pensé de notre service ?")
        score = gr.Radio(RATINGS, label="Votre note (1 = très insatisfait, 5 = très satisfait)", elem_id="rating-score")
        send = gr.Button("Envoyer ma note", variant="primary", size="sm", elem_id="rating-send")
    timer = gr.Timer(POLL_S, active=False)
    opts = {"api_name": False, "show_progress": "hidden"}
    session.change(cb.toggle, session, [timer, rating_ticket, box], **opts)
    timer.tick(
        cb.poll, [session, chatbot, ids, cursor, rating_ticket, busy], [chatbot, ids, cursor, rating_ticket, box], **opts
    )
    send.click(cb.rate, [session, rating_ticket, score, chatbot, ids], [box, chatbot, ids, status], **opts)
    return {"rating_box": box, "rating": score, "rating_send": send, "timer": timer, "cursor": cursor}
