"""Customer chat callbacks: an answer that fails mid-stream never leaves the chat busy (issue 12, finding 7)."""

from __future__ import annotations

from types import SimpleNamespace

from guard import RateLimits
from rag.chat import ChatService
from rag.contact import validate_contact
from settings import get_settings
from tickets import TicketService
from ui.chat_live import LiveCallbacks
from ui.chat_tab import ANSWER_ERROR, ChatCallbacks

QUESTION = "Comment télécharger ma facture ?"


class BreaksMidStream:
    """The real answer engine, except that the next answer fails after its first streamed piece."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.fail_next = True

    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def stream_answer(self, *args, **kwargs):
        if self.fail_next:
            self.fail_next = False
            yield "Pour télécharger votre fac"
            raise RuntimeError("generation backend crashed")
        yield from self.engine.stream_answer(*args, **kwargs)


def test_an_answer_failing_mid_stream_frees_the_chat_and_the_live_poll(db, engine, caplog):
    tickets = TicketService(db)
    chat = ChatService(db, BreaksMidStream(engine), tickets)
    callbacks = ChatCallbacks(SimpleNamespace(chat=chat, limits=RateLimits.from_settings(get_settings().api)))
    live = LiveCallbacks(SimpleNamespace(chat=chat))
    session = chat.start(validate_contact("Léa Martin", "06 12 34 56 78"))

    # What the browser saw at each step (the callback updates one history list in place, as Gradio allows).
    seen = []
    for output in callbacks.send(QUESTION, session, [], []):  # the old code raised here, busy left True
        seen.append((output[0][-1]["content"], output[-1]))

    assert ("Pour télécharger votre fac", True) in seen  # it did fail after the first streamed piece
    history, ids, text, status, busy = output
    assert busy is False and status == ""
    assert text == QUESTION  # given back in the input box, ready to send again
    assert history[-1] == {"role": "assistant", "content": ANSWER_ERROR}
    assert "Une erreur est survenue" in ANSWER_ERROR and "vous pouvez réessayer" in ANSWER_ERROR
    assert len(ids) == len(history) == 2 and ids == [None, None]  # nothing to vote on
    stored = chat.history(session)
    assert [m.role for m in stored] in ([], ["user"])  # the question at most, never a partial answer
    assert "answer failed" in caplog.text

    *_, (history, ids, text, _, busy) = callbacks.send(text, session, history, ids)  # the customer goes on
    assert busy is False and text == "" and len(ids) == len(history) == 4
    assert "facture" in history[-1]["content"].lower() and ids[-1] is not None
    assert [m.role for m in chat.history(session)][-2:] == ["user", "assistant"]

    ticket = tickets.open_ticket(conversation_id=session.conversation_id, customer_id=None,
                                 category="facturation", priority="LOW", summary="suivi")  # fmt: skip
    tickets.take(ticket.id, "a.agent")
    tickets.reply_to_customer(ticket.id, "a.agent", "Bonjour Léa, je regarde votre dossier.")
    shown, shown_ids, cursor, *_ = live.poll(session, history, ids, 0, None, busy=busy)
    assert "je regarde votre dossier" in shown[-1]["content"] and len(shown_ids) == len(shown) and cursor > 0
