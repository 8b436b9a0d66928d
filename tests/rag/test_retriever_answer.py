"""Answer engine over the shipped KB: retrieval, contract fields, scope, escalation, small talk."""

from __future__ import annotations

import pytest

from rag.answer import GREETING_TEXT, OUT_OF_SCOPE_TEXT


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Comment je récupère ma facture en pdf ?", "fac-001"),
        ("Comment avoir mon code RIO ?", "res-007"),
        ("je veux payer avec une autre carte bancaire", "fac-004"),
        ("Mon téléphone ne capte plus aucune barre", "tec-001"),
        ("où voir ma consommation de data ?", "for-008"),
    ],
)
def test_paraphrases_find_the_right_entry(engine, question: str, expected: str) -> None:
    answer = engine.answer(question)
    assert answer.top_entry == expected
    assert answer.sources[0].id == expected
    assert not answer.out_of_scope


def test_apn_question_returns_the_apn_settings(engine) -> None:
    answer = engine.answer("Quels réglages APN pour avoir internet ?")
    assert "tec-003" in [s.id for s in answer.sources]
    assert "APN free" in answer.text


def test_rio_number_is_in_the_answer(engine) -> None:
    answer = engine.answer("numéro pour avoir mon RIO")
    assert answer.top_entry == "res-007"
    assert "3179" in answer.text


def test_answer_carries_the_contract_fields(engine) -> None:
    answer = engine.answer("Où puis-je télécharger mes factures ?")
    assert answer.intent == "facturation"
    assert 0.0 <= answer.confidence <= 1.0 and answer.confidence >= engine.config.min_confidence
    assert answer.latency_ms > 0
    assert 1 <= len(answer.sources) <= engine.config.top_k
    for source in answer.sources:
        assert source.id and source.title and 0 < source.score <= 1
    assert [s.score for s in answer.sources] == sorted((s.score for s in answer.sources), reverse=True)
    assert answer.links and all(link["url"].startswith("https://") and link["label"] for link in answer.links)
    assert "https://mobile.free.fr/moncompte/" in [link["url"] for link in answer.links]
    assert not answer.needs_escalation and answer.priority is None
    data = answer.to_dict()
    assert data["sources"][0].keys() == {"id", "title", "score"}


@pytest.mark.parametrize("question", ["Quel temps fera-t-il demain à Paris ?", "Donnez-moi une recette de crêpes"])
def test_out_of_scope_question_is_declined_without_escalation(engine, question: str) -> None:
    answer = engine.answer(question)
    assert answer.out_of_scope is True
    assert answer.text == OUT_OF_SCOPE_TEXT
    assert answer.sources == []
    assert answer.needs_escalation is False and answer.escalation_reasons == []
    assert 0.0 <= answer.confidence <= 1.0


def test_competitor_offer_is_out_of_scope(engine) -> None:
    answer = engine.answer("Le forfait Orange est-il moins cher que le vôtre ?")
    assert answer.out_of_scope is True and not answer.needs_escalation


def test_porting_from_a_competitor_is_answered(engine) -> None:
    answer = engine.answer("Je suis chez SFR et je veux garder mon numéro en arrivant chez Free")
    assert answer.out_of_scope is False
    assert answer.top_entry in ("act-003", "res-006")
    assert "RIO" in answer.text


def test_explicit_human_request_escalates(engine) -> None:
    answer = engine.answer("Je veux parler à un conseiller")
    assert answer.needs_escalation is True
    assert "demande explicite d'un conseiller" in answer.escalation_reasons
    assert answer.priority == "MEDIUM"
    assert "https://mobile.free.fr/assistance/contact.html" in [link["url"] for link in answer.links]


def test_cancellation_escalates_and_still_answers(engine) -> None:
    answer = engine.answer("Je veux résilier mon forfait")
    assert answer.needs_escalation is True
    assert "demande de résiliation" in answer.escalation_reasons
    assert "Résilier mon forfait" in answer.text
    assert answer.top_entry == "res-001" and answer.intent == "résiliation"


def test_intense_anger_escalates_with_high_priority(engine) -> None:
    answer = engine.answer("VOUS ÊTES DES ESCROCS, MA CONNEXION NE MARCHE JAMAIS, C'EST NUL !!!")
    assert answer.needs_escalation is True
    assert "mécontentement important" in answer.escalation_reasons
    assert answer.priority == "HIGH"
    assert answer.sentiment >= 0.6
    assert answer.text.startswith("Je suis désolé")


def test_repeated_failure_escalates(engine) -> None:
    question = "Je n'ai pas de réseau, que faire ?"
    first = engine.answer(question, previous_top_entries=[])
    assert first.top_entry == "tec-001" and not first.needs_escalation
    again = engine.answer(question, previous_top_entries=["tec-001", "fac-001", "tec-001"])
    assert again.needs_escalation is True
    assert "problème non résolu après plusieurs tentatives" in again.escalation_reasons
    assert again.priority == "HIGH"
    other = engine.answer(question, previous_top_entries=["tec-001", "fac-001"])
    assert not other.needs_escalation  # only once before: not yet a repeat


@pytest.mark.parametrize("message", ["bonjour", "Bonjour !", "Salut"])
def test_greeting_is_small_talk(engine, message: str) -> None:
    answer = engine.answer(message)
    assert answer.text == GREETING_TEXT
    assert not answer.needs_escalation and answer.sources == [] and answer.confidence == 1.0


def test_thanks_is_small_talk(engine) -> None:
    answer = engine.answer("merci beaucoup")
    assert "Avec plaisir" in answer.text and not answer.needs_escalation


def test_retriever_tolerates_typos(engine) -> None:
    retrieval = engine.retriever.search("telecharger ma facure")
    assert retrieval.top.entry.id == "fac-001"
    assert "factur" in retrieval.tokens
    assert retrieval.known_ratio == 1.0
