"""No answer promises a hand-off, ticket, callback or refund the turn did not make (rag/promises.py)."""

from __future__ import annotations

import pytest

from rag.answer import entry_text
from rag.evaluation import false_promises
from rag.promises import find_promises, keep_promises_honest
from rag.sources import load_kb
from tests.conftest import SHIPPED_KB

PROMISES = [
    ("Votre demande est transmise à un conseiller avec tout l'historique.", "handoff"),
    ("Je transmets votre demande au support.", "handoff"),
    ("Je vous mets en relation avec un conseiller.", "handoff"),
    ("Un conseiller va vous répondre dans la journée.", "handoff"),
    ("Bienvenue. Un ticket a été ouvert pour votre demande.", "ticket"),
    ("Votre dossier a bien été enregistré.", "ticket"),
    ("Un conseiller vous rappellera demain matin.", "callback"),
    ("Vous allez être rappelé par un technicien.", "callback"),
    ("Vous serez remboursé sous 5 jours.", "refund"),
    ("Nous allons vous rembourser le trop-perçu.", "refund"),
    ("Votre remboursement a été effectué.", "refund"),
    ("Un ticket est créé et un conseiller vous répond ici.", "ticket"),
]
NOT_PROMISES = [
    "Si vous le souhaitez, je peux transmettre votre demande à un conseiller.",
    "Lors d'une escalade, un ticket est créé avec la catégorie de la demande.",
    "Dites-le simplement dans ce chat : un ticket est créé et un conseiller le prend en charge.",
    "Si le client veut garder son numéro, le conseiller rappelle qu'il ne faut pas résilier.",
    "Un conseiller prend en charge la demande dans un délai qui dépend de son niveau d'urgence.",
    "Pour rappel, le Forfait Free 5G inclut déjà 25 Go utilisables en Europe et DOM.",
    "Une demande de remboursement ou un litige financier est traité par un conseiller.",
    "Vous pouvez aussi utiliser la page de contact.",
]


@pytest.mark.parametrize(("text", "kind"), PROMISES)
def test_promises_are_found(text: str, kind: str) -> None:
    assert kind in [p.kind for p in find_promises(text)]


@pytest.mark.parametrize("text", NOT_PROMISES)
def test_offers_conditions_and_procedures_are_not_promises(text: str) -> None:
    assert find_promises(text) == []


def test_an_escalated_turn_may_announce_the_hand_off_but_never_a_refund_or_callback() -> None:
    text = "Votre demande est transmise à un conseiller. Un ticket a été ouvert. Vous serez remboursé."
    assert {p.kind for p in find_promises(text, escalated=True)} == {"refund"}
    assert find_promises("Un conseiller vous rappellera.", escalated=True)[0].kind == "callback"


@pytest.mark.parametrize(
    ("text", "honest"),
    [
        ("Vérifiez le mode avion. Si rien ne change, je transmets votre demande au support.",
         "Vérifiez le mode avion. Si rien ne change, je peux transmettre votre demande au support."),
        ("Aucun frais. Je transmets aussi votre demande à un conseiller qui pourra vous accompagner.",
         "Aucun frais. Je peux aussi transmettre votre demande à un conseiller qui pourra vous accompagner."),
        ("Désolé. Votre demande est transmise à un conseiller.", "Désolé. Votre demande peut être transmise à un conseiller."),
        ("Bienvenue ici. Un ticket a été ouvert et un conseiller vous répond ici.", "Bienvenue ici."),
        ("Un ticket est créé avec l'historique. Vous recevez un accusé, puis un conseiller vous répond ici.",
         "Lorsqu'une demande est transmise à un conseiller : un ticket est créé avec l'historique. "
         "Vous recevez un accusé, puis un conseiller vous répond ici."),
        ("Pour payer :\n1. Ouvrez l'Espace Abonné.\n2. Vous serez remboursé.\n\nMerci.", "Pour payer :\n1. Ouvrez l'Espace Abonné.\n\nMerci."),
    ],
)
def test_promises_become_offers_conditions_or_disappear(text: str, honest: str) -> None:
    assert keep_promises_honest(text) == honest
    assert find_promises(honest) == []


def test_an_escalated_turn_keeps_the_hand_off_wording() -> None:
    text = "Votre demande est transmise à un conseiller. Vous serez remboursé."
    assert keep_promises_honest(text, escalated=True) == "Votre demande est transmise à un conseiller."


def test_every_shipped_kb_entry_is_said_without_a_false_promise() -> None:
    entries = load_kb(SHIPPED_KB)
    raw = [e.id for e in entries if find_promises(e.answer)]
    assert raw, "the shipped KB keeps agent wording with promises: this test must see some"
    for entry in entries:
        for human in (False, True):
            text = entry_text(entry, escalated=False, human_requested=human)
            assert find_promises(text) == [], (entry.id, text)
            assert text.strip(), entry.id
        kept = entry_text(entry, escalated=True, human_requested=False)
        assert [p.kind for p in find_promises(kept, escalated=True)] == [], entry.id


def test_no_answer_to_a_kb_question_promises_what_it_did_not_do(engine) -> None:
    for entry in load_kb(SHIPPED_KB):
        for question in dict.fromkeys([entry.title, *entry.questions[:2]]):
            answer = engine.answer(question)
            assert false_promises(answer) == [], (entry.id, question, answer.text)
