"""Escalation classes of issue 17 end to end: the ticket exists and says why; questions about them open none."""

from __future__ import annotations

import pytest

from rag.contact import validate_contact
from rag.evaluation import false_promises

ANNE = validate_contact("Anne Martin", "06 98 76 54 32")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("Je pars chez un autre opérateur, coupez ma ligne dès aujourd'hui", "demande de résiliation"),
        ("Mettez fin à mon contrat au plus vite", "demande de résiliation"),
        ("4e fois que je vous écris pour mes MMS, j'ai tout refait, toujours rien", "problème non résolu après plusieurs tentatives"),
        ("J'ai résilié le mois dernier et vous m'avez encore prélevé, remboursez-moi", "remboursement ou litige financier"),
        ("Je veux parler à un conseiller", "demande explicite d'un conseiller"),
    ],
)
def test_requests_open_a_ticket_that_states_the_reason(chat_service, message: str, reason: str) -> None:
    session = chat_service.start(ANNE)
    reply = chat_service.send(session, message)
    assert reply.answer.needs_escalation and reason in reply.answer.escalation_reasons
    assert reply.ticket is not None and reason in reply.ticket.summary
    assert false_promises(reply.answer) == []


@pytest.mark.parametrize(
    "message",
    [
        "si un jour j'ai besoin d'un humain, il met combien de temps ?",
        "Je me renseigne : si je résilie, est-ce que je perds mon numéro ?",
        "Il y a des frais si je quitte Free Mobile ?",
        "Comment est-ce qu'on fait une réclamation chez vous ?",
    ],
)
def test_questions_about_agents_or_cancelling_are_answered_without_a_ticket(chat_service, message: str) -> None:
    session = chat_service.start(ANNE)
    reply = chat_service.send(session, message)
    assert reply.ticket is None and not reply.answer.needs_escalation and not reply.answer.out_of_scope
    assert reply.answer.sources and false_promises(reply.answer) == []
