"""Scoring of the answer engine on the project's evaluation sets (`datasets/eval/*.jsonl`).

An answer is right when it has the expected facts, the expected escalation and scope decisions,
and promises nothing the turn did not do (rag/promises.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.answer import Answer, AnswerEngine
from rag.promises import find_promises
from rag.text import compact


@dataclass
class ItemResult:
    """One evaluation question with its verdicts."""

    id: str
    question: str
    facts_ok: bool
    escalation_ok: bool
    scope_ok: bool
    answer: Answer
    false_promises: list[str] = field(default_factory=list)  # sentences promising what this turn did not do

    @property
    def correct(self) -> bool:
        """Right facts, right escalation decision, right scope decision, and no false promise."""
        return self.facts_ok and self.escalation_ok and self.scope_ok and not self.false_promises


def load_eval_set(path: Path) -> list[dict]:
    """Read the JSONL evaluation set."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def facts_found(text: str, facts: list[str]) -> bool:
    """All expected facts appear in the text (case, accents, spaces and punctuation ignored)."""
    haystack = compact(text)
    return all(compact(f) in haystack for f in facts)


def false_promises(answer: Answer) -> list[str]:
    """Sentences of the answer stating that a human, a ticket, a callback or a refund is on its way
    although this turn did not escalate (a hand-off or a ticket is true only when it did)."""
    return [p.sentence for p in find_promises(answer.text, escalated=answer.needs_escalation)]


def score_item(item: dict, answer: Answer) -> ItemResult:
    """Judge one answer against its expectations."""
    oos = bool(item.get("out_of_scope"))
    return ItemResult(
        id=item["id"],
        question=item["question"],
        facts_ok=facts_found(answer.text, item.get("expected_facts", [])) if not oos else True,
        escalation_ok=answer.needs_escalation == bool(item.get("expect_escalation")),
        scope_ok=answer.out_of_scope == oos,
        answer=answer,
        false_promises=false_promises(answer),
    )


def evaluate(engine: AnswerEngine, items: list[dict]) -> tuple[dict, list[ItemResult]]:
    """Run every item once; return summary metrics and per-item results."""
    results = [score_item(item, engine.answer(item["question"])) for item in items]
    in_scope = [r for r, i in zip(results, items, strict=True) if not i.get("out_of_scope")]
    oos = [r for r, i in zip(results, items, strict=True) if i.get("out_of_scope")]
    esc = [r for r, i in zip(results, items, strict=True) if i.get("expect_escalation")]
    lat = np.array([r.answer.latency_ms for r in results])

    def rate(rs: list[ItemResult], attr: str) -> float | None:
        return round(sum(getattr(r, attr) for r in rs) / len(rs), 4) if rs else None

    summary = {
        "items": len(results),
        "accuracy": rate(results, "correct"),
        "fact_accuracy": rate(in_scope, "facts_ok"),
        "escalation_accuracy": rate(results, "escalation_ok"),
        "escalation_recall": rate(esc, "escalation_ok"),
        "out_of_scope_accuracy": rate(oos, "scope_ok"),
        "false_out_of_scope": round(sum(not r.scope_ok for r in in_scope) / max(1, len(in_scope)), 4),
        "false_promises": sum(bool(r.false_promises) for r in results),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 2) if len(lat) else None,
    }
    return summary, results
