"""Review queue: candidates from 👎, resolved escalations and gaps, redacted; approvals to the training set and the KB."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rag.kb import KnowledgeBase
from settings import RagConfig
from tests.conftest import write_mini_kb
from tests.rag.test_gaps import _turn
from tests.training.test_data import PHONES, PII, _config, _pii_conversations, _read
from training.review import ReviewError, ReviewQueue, build_published

LOW = {"confidence": 0.2, "out_of_scope": False, "top_entry": "m-2", "intent": "forfait",
       "escalation_reasons": ["confiance de recherche insuffisante"]}  # fmt: skip


@pytest.fixture
def kb(db, tmp_path: Path) -> KnowledgeBase:
    base = KnowledgeBase(db, RagConfig(kb_dir=write_mini_kb(tmp_path / "kb"), index_dir=tmp_path / "index"))
    assert base.ensure_seeded()
    return base


@pytest.fixture
def queue(db, kb) -> ReviewQueue:
    _pii_conversations(db)  # c1: resolved escalation with an agent's reply; c2: 👎 with a phone in the comment
    _turn(db, f"Le roaming au Canada, je suis joignable au {PHONES[0]}", LOW, datetime(2026, 11, 5, tzinfo=UTC))
    return ReviewQueue(db, kb=kb, min_confidence=0.45)


def _by_source(queue: ReviewQueue) -> dict:
    return {c.source: c for c in queue.candidates()}


def test_candidates_of_each_source_are_redacted(queue: ReviewQueue) -> None:
    found = _by_source(queue)
    assert set(found) == {"thumbs_down", "escalation", "gap"}
    assert "relancé le prélèvement" in found["escalation"].context  # the agent's resolution
    assert found["escalation"].suggestion.startswith("Bonjour [nom]")
    assert "appelez [téléphone]" in found["thumbs_down"].context  # the customer's comment
    assert found["gap"].question.endswith("joignable au [téléphone]") and found["gap"].category == "forfait"
    text = json.dumps([c.to_dict() for c in queue.candidates()], ensure_ascii=False)
    assert not PII.search(text), PII.search(text).group(0)


def test_approve_for_both_redacts_and_drafts_a_kb_entry(queue: ReviewQueue, kb: KnowledgeBase) -> None:
    gap = _by_source(queue)["gap"]
    note = queue.approve(gap.key, f"Le roaming au Canada est en option ; appelez le {PHONES[4]}.", "both",
                         reviewer="t1", role="trainer", category="forfait")  # fmt: skip
    assert "les deux" in note
    stored = queue.repo.get(gap.key)
    assert stored.status == "approved" and stored.reviewer == "t1"
    assert stored.reference_answer == "Le roaming au Canada est en option ; appelez le [téléphone]."
    assert not PII.search(stored.question + stored.reference_answer)
    draft = kb.repo.get(stored.entry_id)
    assert draft.status == "draft" and draft.questions == [stored.question] and draft.category == "forfait"
    assert gap.key not in {c.key for c in queue.candidates()}  # reviewed once
    groups = queue.review_groups()
    assert [g.pairs for g in groups] == [[(stored.question, stored.reference_answer)]]


def test_approve_for_the_kb_as_a_phrasing_and_reject(queue: ReviewQueue, kb: KnowledgeBase) -> None:
    found = _by_source(queue)
    queue.approve(found["thumbs_down"].key, "", "kb", reviewer="a1", role="admin", entry_id="m-2",
                  question="Mon IBAN est demandé par le bot")  # fmt: skip
    assert "Mon IBAN est demandé par le bot" in kb.repo.get("m-2").questions
    assert kb.repo.get("m-2").status == "draft"
    queue.reject(found["escalation"].key, reviewer="a1", role="admin")
    assert queue.repo.get(found["escalation"].key).status == "rejected"
    assert queue.review_groups() == []  # neither a KB-only approval nor a rejection trains
    assert {c.source for c in queue.candidates()} == {"gap"}


def test_refusals(queue: ReviewQueue) -> None:
    gap = _by_source(queue)["gap"]
    with pytest.raises(ReviewError, match="formateurs"):
        queue.approve(gap.key, "Réponse.", "training", reviewer="ag", role="agent")
    with pytest.raises(ReviewError, match="destination"):
        queue.approve(gap.key, "Réponse.", "everywhere", reviewer="t", role="trainer")
    with pytest.raises(ReviewError, match="réponse de référence"):
        queue.approve(gap.key, "  ", "training", reviewer="t", role="trainer")
    with pytest.raises(ReviewError, match="déjà"):
        queue.approve("feedback:999", "Réponse.", "training", reviewer="t", role="trainer")
    with pytest.raises(ReviewError, match="déjà utilisée"):  # the KB's own validation, in French
        queue.approve(gap.key, "", "kb", reviewer="t", role="trainer", entry_id="m-1", question="pas de signal")
    assert queue.repo.get(gap.key) is None  # nothing stored when the KB refused


def test_dataset_from_the_published_kb_and_approved_reviews(queue: ReviewQueue, kb, db, tmp_path: Path) -> None:
    queue.approve(_by_source(queue)["escalation"].key, "Nous relançons le prélèvement sous 3 jours ouvrés.",
                  "training", reviewer="t", role="trainer")  # fmt: skip
    kb.save_entry({"id": "m-1", "answer": "Réponse pas encore publiée."}, author="t", role="trainer")
    steps = []
    report = build_published(_config(tmp_path, db.url), db.url, db=db, kb=kb, progress=lambda f, d: steps.append(f))
    rows = _read(report.out_dir / "train.jsonl") + _read(report.out_dir / "validation.jsonl")
    review = [r for r in rows if r["kind"] == "review"]
    assert review and review[0]["messages"][2]["content"].startswith("Nous relançons")
    assert not any("pas encore publiée" in r["messages"][2]["content"] for r in rows)  # the published version
    stats = report.stats
    assert set(stats["per_source"]["train"]) | set(stats["per_source"]["validation"]) == {"kb", "review", "tickets"}
    assert stats["redaction"]["texts"] > 0 and stats["redaction"]["by_kind"]["phone"] > 0
    assert steps == sorted(steps) and steps[0] < 0.1 and steps[-1] >= 0.85
    for name in ("train.jsonl", "validation.jsonl", "stats.json"):
        assert not PII.search((report.out_dir / name).read_text(encoding="utf-8"))


def test_cli_build_published(queue: ReviewQueue, kb, db, tmp_path: Path, capsys) -> None:
    from training.config import to_yaml
    from training.data import main

    queue.approve(_by_source(queue)["gap"].key, "Le roaming au Canada est en option.", "training", reviewer="t",
                  role="trainer")  # fmt: skip
    kb.save_entry({"id": "m-1", "answer": "Réponse pas encore publiée."}, author="t", role="trainer")
    path = tmp_path / "data.yaml"
    path.write_text(to_yaml(_config(tmp_path, db.url)), encoding="utf-8")
    assert main(["build", "--config", str(path), "--db", db.url, "--published"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert sum(stats["per_source"][s].get("review", 0) for s in ("train", "validation")) == 3
    rows = _read(tmp_path / "out" / "train.jsonl") + _read(tmp_path / "out" / "validation.jsonl")
    assert not any("pas encore publiée" in r["messages"][2]["content"] for r in rows)
