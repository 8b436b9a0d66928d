"""Threshold calibration: curves over examples, and unseen KB paraphrases from k-fold indexes."""

from __future__ import annotations

from rag.calibration import Example, best_threshold, confidence_curve, scope_curve, variant_examples
from rag.sources import load_kb


def _ex(confidence: float, in_scope: bool, domain: str = "none", correct: bool | None = None, known: float = 1.0) -> Example:
    return Example("q", in_scope, domain, False, confidence, known, correct, "test")


def test_scope_curve_counts_refused_questions_and_caught_ones() -> None:
    examples = [_ex(0.3, False), _ex(0.5, False), _ex(0.6, True), _ex(0.8, True), _ex(0.2, True, domain="weak")]
    curve = {p["threshold"]: p for p in scope_curve(examples, "none", [0.4, 0.55, 0.7])}
    assert curve[0.4] == {"threshold": 0.4, "false_out_of_scope": 0.0, "out_of_scope_recall": 0.5, "errors": 1}
    assert curve[0.55] == {"threshold": 0.55, "false_out_of_scope": 0.0, "out_of_scope_recall": 1.0, "errors": 0}
    assert curve[0.7]["false_out_of_scope"] == 0.5
    assert best_threshold(scope_curve(examples, "none", [0.4, 0.52, 0.55, 0.58, 0.7])) == (0.55, 0)


def test_known_words_weigh_in_the_scope_score() -> None:
    examples = [_ex(0.45, True, known=1.0), _ex(0.5, False, known=0.0)]
    assert best_threshold(scope_curve(examples, "none", [0.3, 0.5, 0.6]))[1] == 1  # confidence alone cannot separate
    assert best_threshold(scope_curve(examples, "none", [0.6, 0.7, 0.9], known_weight=0.4)) == (0.7, 0)


def test_confidence_curve() -> None:
    examples = [_ex(0.3, True, correct=False), _ex(0.5, True, correct=True), _ex(0.7, True, correct=True)]
    low, high = confidence_curve(examples, [0.2, 0.4])
    assert low["answered"] == 1.0 and round(low["right_when_answered"], 2) == 0.67
    assert high["answered"] == round(2 / 3, 4) and high["right_when_answered"] == 1.0


def test_variants_are_asked_against_an_index_without_them(mini_config, embedder) -> None:
    entries = load_kb(mini_config.kb_dir)
    examples = variant_examples(entries, mini_config, embedder, folds=2)
    variants = sum(len(e.questions) - 1 for e in entries if e.kind == "faq")
    assert len(examples) == variants > 0
    assert all(e.in_scope and e.source == "kb_variants" and 0 <= e.confidence <= 1 for e in examples)
    assert sum(e.correct for e in examples) >= len(examples) // 2  # unseen paraphrases mostly find their entry
