"""Evaluation scoring: fact matching, per-item verdicts and the summary of evaluate()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.answer import Answer
from rag.evaluation import evaluate, facts_found, load_eval_set, score_item


def test_facts_found_ignores_case_accents_spaces_and_punctuation() -> None:
    text = "Rendez-vous dans l'Espace Abonné, rubrique « Mes factures » : elles restent 12 mois."
    assert facts_found(text, ["mes factures", "ESPACE ABONNE", "12mois", "rendez vous"])
    assert facts_found(text, [])
    assert not facts_found(text, ["mes factures", "24 mois"])


def _item(**kw) -> dict:
    return {"id": "t", "question": "q", "expected_facts": [], "expect_escalation": False, "out_of_scope": False, **kw}


def test_score_item_verdicts() -> None:
    good = score_item(_item(expected_facts=["3179"]), Answer(text="Appelez le 3179."))
    assert good.facts_ok and good.escalation_ok and good.scope_ok and good.correct

    missing_fact = score_item(_item(expected_facts=["3179"]), Answer(text="Appelez-nous."))
    assert not missing_fact.facts_ok and not missing_fact.correct

    missed_escalation = score_item(_item(expect_escalation=True), Answer(text="x"))
    assert not missed_escalation.escalation_ok and missed_escalation.facts_ok

    oos = score_item(_item(out_of_scope=True, expected_facts=["jamais"]), Answer(text="hors sujet", out_of_scope=True))
    assert oos.correct  # facts are not checked for out-of-scope items

    wrongly_declined = score_item(_item(), Answer(text="hors sujet", out_of_scope=True))
    assert not wrongly_declined.scope_ok


def test_a_promise_without_escalation_is_a_false_promise() -> None:
    promise = "Votre demande est transmise à un conseiller. Il vous répondra ici."
    unkept = score_item(_item(), Answer(text=promise))
    assert unkept.false_promises == ["Votre demande est transmise à un conseiller."]
    assert unkept.facts_ok and unkept.escalation_ok and not unkept.correct

    kept = score_item(_item(expect_escalation=True), Answer(text=promise, needs_escalation=True))
    assert kept.false_promises == [] and kept.correct

    refund = score_item(_item(expect_escalation=True), Answer(text="Vous serez remboursé sous 5 jours.", needs_escalation=True))
    assert refund.false_promises  # the assistant never refunds, escalated or not


def test_load_eval_set_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl"
    path.write_text(json.dumps(_item(id="a")) + "\n\n" + json.dumps(_item(id="b")) + "\n", encoding="utf-8")
    assert [i["id"] for i in load_eval_set(path)] == ["a", "b"]


def test_evaluate_summary(engine) -> None:
    items = [
        _item(id="bill", question="Comment télécharger ma facture ?", expected_facts=["Mes factures"]),
        _item(id="human", question="Je veux parler à un conseiller", expect_escalation=True),
        _item(id="weather", question="Quel temps fera-t-il demain ?", out_of_scope=True),
    ]
    summary, results = evaluate(engine, items)
    assert [r.id for r in results] == ["bill", "human", "weather"]
    assert all(r.correct for r in results)
    assert summary == {
        "items": 3,
        "accuracy": 1.0,
        "fact_accuracy": 1.0,
        "escalation_accuracy": 1.0,
        "escalation_recall": 1.0,
        "out_of_scope_accuracy": 1.0,
        "false_out_of_scope": 0.0,
        "false_promises": 0,
        "latency_ms_p50": pytest.approx(summary["latency_ms_p50"]),
        "latency_ms_p95": pytest.approx(summary["latency_ms_p95"]),
    }
    assert 0 < summary["latency_ms_p50"] <= summary["latency_ms_p95"]


def test_evaluate_counts_failures(engine) -> None:
    items = [_item(id="bad", question="Comment télécharger ma facture ?", expected_facts=["fait introuvable"])]
    summary, _ = evaluate(engine, items)
    assert summary["accuracy"] == 0.0 and summary["fact_accuracy"] == 0.0
    assert summary["escalation_recall"] is None and summary["out_of_scope_accuracy"] is None
