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


def test_topic_removes_human_request_and_billing_disputes_also_search_the_dispute_procedure() -> None:
    topic = analyze_message("Je veux parler à un conseiller pour mon code RIO perdu").topic
    assert "conseiller" not in topic and "rio" in topic
    dispute = analyze_message("Je veux être remboursé de ma facture de 30 €")
    assert dispute.extra_topic == "contester une facture, contestation de facture"
    assert "facture" in dispute.topic


CANCEL = "demande de résiliation"
REPEAT = "problème non résolu après plusieurs tentatives"
HUMAN = "demande explicite d'un conseiller"


@pytest.mark.parametrize(
    "message",
    [
        "Je veux arrêter mon abonnement",
        "je pars chez un autre opérateur, coupez ma ligne",
        "Mettez fin à mon contrat dès que possible",
        "je souhaite clôturer la ligne de mon père",
        "Je ne veux plus de Free, annulez mon forfait",
        "stoppez mon abonnement svp",
        "je me désabonne",
    ],
)
def test_cancellation_requests_without_the_word_resilier_escalate(message: str) -> None:
    assert CANCEL in analyze_message(message).escalation_reasons


@pytest.mark.parametrize(
    "message",
    [
        "Il y a des frais si je quitte Free Mobile ?",
        "Je ne compte pas partir, je me renseigne : si je résilie, je perds mon numéro ?",
        "Je pars chez un autre opérateur, comment garder mon numéro ?",
        "Combien de temps pour que la résiliation soit effective ?",
        "Si un jour je résilie, je dois renvoyer la SIM ?",
    ],
)
def test_questions_about_cancellation_are_answered_not_escalated(message: str) -> None:
    assert analyze_message(message).escalation_reasons == []


@pytest.mark.parametrize(
    "message",
    [
        "4e fois que je vous écris, j'ai tout refait",
        "J'ai tout essayé : redémarré, remis la SIM, vérifié le mode avion. Toujours rien.",
        "Mon problème n'est toujours pas résolu malgré vos conseils",
        "Troisième conversation cette semaine pour le même souci de MMS",
        "j'ai déjà redémarré plusieurs fois, toujours pas de réseau",
    ],
)
def test_a_problem_that_persists_after_several_attempts_escalates(message: str) -> None:
    assert REPEAT in analyze_message(message).escalation_reasons


@pytest.mark.parametrize(
    "message",
    [
        "si un jour j'ai besoin d'un humain, il met combien de temps ?",
        "Si je demande à parler à un conseiller, on me répond sous quel délai ?",
        "Quand je demande un conseiller, il répond où ?",
        "Sous quel délai un conseiller me répond si c'est urgent ?",
    ],
)
def test_questions_about_humans_are_not_requests(message: str) -> None:
    assert HUMAN not in analyze_message(message).escalation_reasons


@pytest.mark.parametrize(
    "message",
    [
        "Je veux parler à un conseiller",
        "Est-ce que je peux avoir quelqu'un au téléphone ?",
        "un agent humain svp",
        "Passez-moi un conseiller, si possible maintenant",
    ],
)
def test_requests_for_a_human_escalate(message: str) -> None:
    assert HUMAN in analyze_message(message).escalation_reasons


@pytest.mark.parametrize(
    ("message", "reasons"),
    [
        ("Comment est-ce qu'on fait une réclamation chez vous ?", []),
        ("Comment porter plainte ?", []),
        ("Je conteste un montant : dois-je payer la facture en attendant ?", []),
        ("Ceci est une réclamation écrite, j'exige une réponse.", ["réclamation formelle"]),
        ("Je dépose une réclamation : ma ligne est coupée depuis 3 jours", ["réclamation formelle"]),
        ("remboursez moi les 40€, je conteste cette facture", ["remboursement ou litige financier"]),
        ("J'ai résilié mais vous m'avez prélevé après la résiliation, rendez-moi mon argent",
         ["remboursement ou litige financier"]),
    ],
)
def test_complaints_and_disputes_versus_questions_about_them(message: str, reasons: list[str]) -> None:
    assert analyze_message(message).escalation_reasons == reasons


@pytest.mark.parametrize(
    ("message", "domain"),
    [
        ("le numéro pour le RIO est gratuit ?", "strong"),
        ("ma carte bancaire expire, je fais quoi pour le prélèvement ?", "strong"),
        ("Quelles catégories utilisez-vous pour les demandes des clients ?", "strong"),
        ("Quel est le numéro de la mairie ?", "weak"),
        ("Ma console de jeux ne se connecte plus", "none"),
        ("Comment ouvrir un compte bancaire en ligne ?", "weak"),
    ],
)
def test_domain_evidence(message: str, domain: str) -> None:
    assert analyze_message(message).domain == domain


def test_other_companies_services_are_recognised_unless_about_this_service() -> None:
    assert analyze_message("Comment je résilie mon abonnement à la salle de sport ?").other_service is True
    assert analyze_message("J'ai besoin d'une facture pour la CAF").other_service is False


def test_a_bare_request_for_a_human_has_nothing_to_search() -> None:
    assert analyze_message("Je veux parler à un conseiller").bare_request is True
    assert analyze_message("Je veux parler à un conseiller pour ma facture").bare_request is False
