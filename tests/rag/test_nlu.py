"""Rule-based understanding: sentiment, intents, escalation reasons, priority and scope."""

from __future__ import annotations

import pytest

from rag.nlu import analyze_message, rule_intent, sentiment_score, ticket_priority
from rag.text import fold


def test_sentiment_ordering() -> None:
    calm = sentiment_score("Bonjour, ma facture est plus élevée que prévu.")
    bangs = sentiment_score("Ma facture est plus élevée que prévu !!")
    furious = sentiment_score("VOUS ÊTES DES ESCROCS ET DES INCOMPÉTENTS, C'EST UNE HONTE !!!")
    assert calm == 0.0
    assert calm < bangs < furious
    assert furious == 1.0


def test_sentiment_counts_angry_emojis() -> None:
    assert sentiment_score("ma ligne ne marche pas 😡😡") > sentiment_score("ma ligne ne marche pas")


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        ("Je veux résilier", "résiliation"),
        ("comment obtenir mon code RIO", "résiliation"),
        ("je veux déposer une réclamation", "réclamation"),
        ("ma facture est fausse", "facturation"),
        ("changer mon RIB", "facturation"),
        ("pas de réseau depuis ce matin", "technique"),
        ("les paramètres APN", "technique"),
        ("quelles options pour mon forfait", "forfait"),
        ("combien de gigas à l'étranger", "forfait"),
        ("activer ma nouvelle SIM", "activation"),
        ("je veux contacter le service client", "assistance"),
        ("quelle heure est-il", None),
    ],
)
def test_rule_intent(message: str, intent: str | None) -> None:
    assert rule_intent(fold(message)) == intent


def test_analysis_defaults_to_general_intent() -> None:
    assert analyze_message("quelle heure est-il").intent == "général"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("Je veux parler à un conseiller", "demande explicite d'un conseiller"),
        ("Je souhaite résilier ma ligne", "demande de résiliation"),
        ("Je veux déposer une plainte", "réclamation formelle"),
        ("J'ai été prélevé deux fois ce mois-ci", "remboursement ou litige financier"),
        (
            "C'est la 3e fois que je redémarre et toujours pas de réseau",
            "problème non résolu après plusieurs tentatives",
        ),
        ("BANDE D'ESCROCS, C'EST INADMISSIBLE !!!", "mécontentement important"),
    ],
)
def test_escalation_reasons(message: str, reason: str) -> None:
    assert reason in analyze_message(message).escalation_reasons


def test_asking_how_cancellation_works_is_not_a_cancellation_by_itself() -> None:
    analysis = analyze_message("Y a-t-il des frais de résiliation ?")
    assert "demande de résiliation" not in analysis.escalation_reasons


@pytest.mark.parametrize(
    ("message", "priority"),
    [
        ("Plus aucun réseau depuis hier, je dois appeler les urgences", "URGENT"),
        ("BANDE D'ESCROCS, C'EST INADMISSIBLE !!!", "HIGH"),
        ("Je veux déposer une plainte", "HIGH"),
        ("Je veux être remboursé", "HIGH"),
        ("Je veux parler à un conseiller", "MEDIUM"),
        ("Je souhaite résilier ma ligne", "MEDIUM"),
    ],
)
def test_ticket_priority(message: str, priority: str) -> None:
    analysis = analyze_message(message)
    assert ticket_priority(analysis, analysis.escalation_reasons) == priority


def test_ticket_priority_without_reason_is_low() -> None:
    analysis = analyze_message("ma facture")
    assert ticket_priority(analysis, []) == "LOW"
    assert ticket_priority(analysis, ["problème non résolu après plusieurs tentatives"]) == "HIGH"


def test_competitor_offer_is_detected() -> None:
    assert analyze_message("Quel est le prix du forfait chez Bouygues ?").competitor_offer is True
    assert analyze_message("Sosh a une meilleure couverture ?").competitor_offer is True


def test_porting_from_a_competitor_is_not_out_of_scope() -> None:
    analysis = analyze_message("Je suis chez Orange, comment garder mon numéro avec un forfait Free ?")
    assert analysis.competitor_offer is False
    assert analysis.has_domain_term is True


def test_domain_terms() -> None:
    assert analyze_message("mon forfait").has_domain_term is True
    assert analyze_message("une recette de crêpes").has_domain_term is False


def test_small_talk() -> None:
    assert analyze_message("Bonjour !").small_talk == "greeting"
    assert analyze_message("merci beaucoup").small_talk == "thanks"
    assert analyze_message("merci, et ma facture ?").small_talk is None


def test_topic_removes_human_request_and_billing_disputes_use_the_dispute_procedure() -> None:
    topic = analyze_message("Je veux parler à un conseiller pour mon code RIO perdu").topic
    assert "conseiller" not in topic and "rio" in topic
    dispute = analyze_message("Je veux être remboursé de ma facture de 30 €")
    assert dispute.topic == "contester une facture, contestation de facture"
