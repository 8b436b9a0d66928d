"""The message classifier: features, the shipped model matching its data, and how it corrects the rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.intent import HANDOFF_REASONS, LABELS, IntentModel, Prediction, features, second_opinion, shipped_model
from rag.nlu import analyze_message
from settings import RagConfig
from training.intent import IntentTrainConfig, is_current, main, train


def _prediction(**probs: float) -> Prediction:
    rest = (1.0 - sum(probs.values())) / (len(LABELS) - len(probs))
    return Prediction({label: probs.get(label, rest) for label in LABELS})


def test_features_are_normalised_hashed_ngrams_robust_to_accents_and_case():
    ids, values = features("Je veux RÉSILIER mon forfait !!")
    assert np.all(np.diff(ids) > 0) and abs(float(np.linalg.norm(values)) - 1) < 1e-6
    same, _ = features("je veux resilier mon forfait !!")
    shared = len(np.intersect1d(ids, same)) / len(ids)
    assert shared > 0.95  # only the shouting feature differs
    assert features("")[0].size == 1  # an empty message still has a vector


def test_the_shipped_model_was_trained_on_todays_data():
    """Editing datasets/intent/*.jsonl or the FAQ phrasings needs `python -m training.intent` (then commit)."""
    assert is_current(IntentTrainConfig()), "run: python -m training.intent"
    model = shipped_model()
    assert model is not None and model.labels == LABELS
    prediction = model.predict("je veux parler à un conseiller maintenant")
    assert abs(sum(prediction.probs.values()) - 1) < 1e-5


def test_training_writes_a_model_the_server_reads(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"text": f"question {i} sur ma facture", "label": "question"} for i in range(6)]
    rows += [{"text": f"recette de gâteau {i}", "label": "oos"} for i in range(6)]
    rows += [{"text": f"je veux un conseiller humain {i}", "label": "human"} for i in range(6)]
    (data / "toy.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    kb = tmp_path / "kb"
    kb.mkdir()
    out = tmp_path / "model.npz"
    assert main(["--data-dir", str(data), "--kb-dir", str(kb), "--out", str(out), "--folds", "3"]) == 0
    model = IntentModel.load(out)
    assert model.predict("recette de gâteau au chocolat").label == "oos"
    assert model.predict("un conseiller humain svp").label == "human"
    assert main(["--data-dir", str(data), "--kb-dir", str(kb), "--out", str(out), "--check"]) == 0
    (data / "toy.jsonl").write_text(json.dumps({"text": "autre", "label": "oos"}), encoding="utf-8")
    assert main(["--data-dir", str(data), "--kb-dir", str(kb), "--out", str(out), "--check"]) == 1


def test_a_bad_label_is_refused_with_its_line(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "x", "label": "question"}\n{"text": "y", "label": "urgent"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        train(IntentTrainConfig(data_dir=tmp_path, kb_dir=tmp_path, folds=0))


def test_a_sure_hand_off_the_rules_missed_escalates_with_its_reason():
    text = "file moi quelqu'un de vrai"
    analysis = analyze_message(text)
    corrected = second_opinion(analysis, text, _prediction(human=0.95), RagConfig())
    assert corrected.escalation_reasons == [HANDOFF_REASONS["human"]]
    unsure = second_opinion(analysis, text, _prediction(human=0.6), RagConfig())
    assert unsure.escalation_reasons == analysis.escalation_reasons


def test_a_sure_question_overrules_the_rules_and_keeps_the_request_words_searched():
    text = "Pour déposer une réclamation sur un montant facturé, je passe par quel menu ?"
    analysis = analyze_message(text)
    assert analysis.escalation_reasons  # what the rules alone decide
    corrected = second_opinion(analysis, text, _prediction(question=0.9), RagConfig())
    assert corrected.escalation_reasons == [] and "reclamation" in corrected.topic
    assert corrected.extra_topic is None


def test_a_request_for_a_human_the_rules_found_is_not_overruled():
    """Unknown words ("qqn", "causer") can make the model see a question; the rules already tell a request
    for a human from a question about humans."""
    text = "ya pas qqn de reel a qui je peux causer ??"
    analysis = analyze_message(text)
    assert analysis.escalation_reasons == ["demande explicite d'un conseiller"]
    assert second_opinion(analysis, text, _prediction(question=0.95), RagConfig()).escalation_reasons == [
        "demande explicite d'un conseiller"]
    about = "si un jour j'ai besoin d'un humain, il met combien de temps ?"
    assert analyze_message(about).escalation_reasons == []  # a question about humans: the rules answer it


def test_a_firm_cancellation_request_is_not_overruled_by_a_question_it_also_asks():
    text = "Je souhaite arrêter mon abonnement, je vais payer combien pour ce mois ?"
    analysis = analyze_message(text)
    assert analysis.escalation_reasons == ["demande de résiliation"]
    assert second_opinion(analysis, text, _prediction(question=0.95), RagConfig()).escalation_reasons == [
        "demande de résiliation"]
    polite = "Comment je résilie svp, ça prend combien de temps ?"  # a how-question: the model may overrule it
    assert second_opinion(analyze_message(polite), polite, _prediction(question=0.95), RagConfig()).escalation_reasons == []


def test_the_engine_answers_out_of_scope_when_the_model_is_sure(engine, monkeypatch):
    class Sure:
        def predict(self, text):
            return _prediction(oos=0.97)

    monkeypatch.setattr(engine, "intent_model", Sure())
    answer = engine.answer("Comment développer mon réseau de clients quand on est plombier ?")
    assert answer.out_of_scope and not answer.needs_escalation


def test_the_engine_hands_over_on_the_models_word(engine, monkeypatch):
    class Sure:
        def predict(self, text):
            return _prediction(anger=0.95)

    monkeypatch.setattr(engine, "intent_model", Sure())
    answer = engine.answer("Comment télécharger ma facture ?")
    assert answer.needs_escalation and answer.escalation_reasons[0] == HANDOFF_REASONS["anger"]
    assert answer.priority == "HIGH"


@pytest.mark.parametrize("text", ["Merci !", "super merci !!", "ok merci", "Bonjour !", "merci beaucoup pour votre aide"])
def test_small_talk_is_left_to_the_rules(engine, text):
    """The n-grams of a thank-you it never saw read as anger (p 0.93 for "Merci !"): small talk and
    messages under three words never get the classifier's hand-off."""
    answer = engine.answer(text)
    assert not answer.needs_escalation and not answer.out_of_scope


def test_too_short_a_message_keeps_the_rules_decision():
    analysis = analyze_message("ok merci")
    assert second_opinion(analysis, "ok merci", _prediction(anger=0.99), RagConfig()) is analysis
    analysis = analyze_message("forfait bloqué")
    assert second_opinion(analysis, "forfait bloqué", _prediction(cancel=0.99), RagConfig()) is analysis
