"""The publication gate: a change that breaks an answer is refused, one that fixes an answer is published."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.answer import AnswerEngine
from rag.kb import KbError, KnowledgeBase
from rag.publish import Publisher
from settings import RagConfig
from tests.conftest import EMBEDDING_MODEL, EVAL_DIR, SHIPPED_KB

# b5-057: the shipped KB answers this SMS-style comparison from an entry about one plan, not from gen-004, which
# compares both.
WRONG_SET, WRONG_ID, FIX_ENTRY = "chat_blind5.jsonl", "b5-057", "gen-004"
WRONG_QUESTION = "c koi la diff entre le forfait a 2 euros et le 5g ?? jhesite"


@pytest.fixture
def publisher(db, tmp_path: Path, embedder) -> Publisher:
    """A KB seeded from the shipped files, gated on three questions of the evaluation set."""
    items = {json.loads(line)["id"]: line for name in ("chat_eval.jsonl", WRONG_SET)
             for line in (EVAL_DIR / name).read_text().splitlines()}
    eval_set = tmp_path / "eval.jsonl"
    eval_set.write_text("\n".join(items[i] for i in ("ev-001", "ev-002", WRONG_ID)) + "\n", encoding="utf-8")
    config = RagConfig(kb_dir=SHIPPED_KB, index_dir=tmp_path / "index", embedding_model=EMBEDDING_MODEL)
    kb = KnowledgeBase(db, config)
    kb.sync_index(embedder)
    return Publisher(kb, embedder, eval_sets=(eval_set,))


def _answer(publisher: Publisher, embedder, question: str):
    return AnswerEngine(publisher.config, embedder).answer(question)


def test_gate_refuses_a_change_that_breaks_an_answer(publisher: Publisher, embedder) -> None:
    before = _answer(publisher, embedder, "Où est-ce que je peux télécharger ma facture en PDF ?").text
    publisher.kb.save_entry({"id": "fac-001", "answer": "Consultez votre courrier."}, author="t", role="trainer")
    changes = []
    publisher.on_change = lambda: changes.append(1)
    result = publisher.publish(author="t", role="trainer")
    assert not result.passed and "baisse" in result.reasons[0]
    assert result.baseline == pytest.approx(66.67) and result.candidate == pytest.approx(0.0)
    assert {c["id"] for c in result.changed} == {"ev-001", "ev-002"}
    assert all(c["before"] and not c["after"] for c in result.changed)
    assert publisher.kb.repo.get("fac-001").status == "draft" and not changes  # nothing published
    assert _answer(publisher, embedder, "Où est-ce que je peux télécharger ma facture en PDF ?").text == before
    with pytest.raises(KbError, match="administrateur"):
        publisher.publish(author="t", role="trainer", override=True)
    forced = publisher.publish(author="boss", role="admin", override=True, note="urgence")
    assert not forced.passed and changes == [1]
    assert publisher.kb.journal()[0] | {"at": None} == {"action": "override", "at": None, "by": "boss",
                                                         "version": 2, "previous": 1, "note": "urgence"}  # fmt: skip


def test_gate_accepts_a_fix_and_rollback_restores(publisher: Publisher, embedder) -> None:
    assert _answer(publisher, embedder, WRONG_QUESTION).top_entry != FIX_ENTRY
    publisher.kb.add_phrasing(FIX_ENTRY, WRONG_QUESTION, author="t", role="trainer")
    result = publisher.publish(author="t", role="trainer")
    assert result.passed, result.reasons
    assert result.candidate > result.baseline
    assert [c["id"] for c in result.changed] == [WRONG_ID] and result.changed[0]["after_entry"] == FIX_ENTRY
    assert _answer(publisher, embedder, WRONG_QUESTION).top_entry == FIX_ENTRY
    assert publisher.kb.repo.get(FIX_ENTRY).status == "published"
    assert sorted(p.name for p in (publisher.config.index_dir / "candidates").iterdir()) == []
    publisher.rollback(author="t", role="trainer")
    assert _answer(publisher, embedder, WRONG_QUESTION).top_entry != FIX_ENTRY
    with pytest.raises(KbError, match="formateurs"):
        publisher.rollback(author="a", role="agent")


def test_agent_proposals_wait_for_an_editor(publisher: Publisher) -> None:
    publisher.kb.save_entry({"id": "prop-1", "category": "forfait", "questions": ["forfait pour ma grand-mère"],
                             "answer": "Le Forfait 2€ convient."}, author="a", role="agent")  # fmt: skip
    assert "prop-1" not in {e.id for e in publisher.candidate_entries()}
    publisher.kb.save_entry({"id": "prop-1", "answer": "Le Forfait 2€ convient bien."}, author="t", role="trainer")
    assert "prop-1" in {e.id for e in publisher.candidate_entries()}
