"""A double click on « Envoyer » (or Enter then click) stores and answers the message once."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import gradio as gr

from guard import RateLimits
from rag.chat import ChatService
from rag.contact import validate_contact
from settings import get_settings
from tickets import TicketService
from ui.chat_tab import ChatCallbacks

QUESTION = "Comment télécharger ma facture ?"


class Gated:
    """The real engine, except that answers wait for `release` (a slow generative answer)."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.entered, self.release = threading.Event(), threading.Event()

    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def stream_answer(self, *args, **kwargs):
        self.entered.set()
        assert self.release.wait(60)
        yield from self.engine.stream_answer(*args, **kwargs)


def _setup(db, engine):
    chat = ChatService(db, engine, TicketService(db))
    return chat, ChatCallbacks(SimpleNamespace(chat=chat, limits=RateLimits.from_settings(get_settings().api))), chat.start(validate_contact("Léa Martin", "06 12 34 56 78"))


def test_a_second_click_while_the_first_is_answered_is_ignored(db, engine):
    gated = Gated(engine)
    chat, callbacks, session = _setup(db, gated)
    first: list = []
    worker = threading.Thread(target=lambda: first.extend(callbacks.send(QUESTION, session, [], [])))
    worker.start()
    assert gated.entered.wait(60)
    second = list(callbacks.send(QUESTION, session, [], []))  # same text, same (old) history: the double click
    gated.release.set()
    worker.join(60)
    assert second == [(gr.skip(),) * 5]
    assert [m.role for m in chat.history(session)] == ["user", "assistant"]
    assert first[-1][4] is False and len(first[-1][0]) == 2  # the first click shows its answer


def test_a_second_click_just_after_a_fast_answer_is_ignored_too(db, engine):
    chat, callbacks, session = _setup(db, engine)
    *_, last = callbacks.send(QUESTION, session, [], [])
    assert last[2] == "" and len(last[0]) == 2
    assert list(callbacks.send(QUESTION, session, [], [])) == [(gr.skip(),) * 5]
    assert [m.role for m in chat.history(session)] == ["user", "assistant"]
    *_, other = callbacks.send("Et mon code RIO ?", session, last[0], last[1])  # another message goes through
    assert len(other[0]) == 4 and len(chat.history(session)) == 4
