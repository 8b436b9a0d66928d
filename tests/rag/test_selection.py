"""Chat-model promotion: validated choices, persisted stack, journal, rollback, applied to the engine."""

from __future__ import annotations

import pytest

from rag.answer import AnswerEngine
from rag.llm.selection import ChatModelService, SelectionError, describe, make_choice
from storage import AppStateRepository

HANG_GUARD_S = 1800  # loading the base model first can take minutes on a busy 2-core machine


@pytest.fixture
def fresh_engine(shipped_config, embedder):
    return AnswerEngine(shipped_config, embedder)


def adapter_choice(path: str = "/models/adapter-a") -> dict:
    return make_choice("adapter-a", "hybrid", {"backend": "transformers", "model": "packaged", "adapter": path},
                       origin="evaluation:quick")  # fmt: skip


def test_invalid_choices_are_refused_in_french():
    with pytest.raises(SelectionError, match="mode de réponse inconnu"):
        make_choice("x", "magique")
    with pytest.raises(SelectionError, match="non modifiables"):
        make_choice("x", "hybrid", {"timeout": 1})
    with pytest.raises(SelectionError, match="invalides"):
        make_choice("x", "hybrid", {"backend": "gpt"})


def test_promote_rollback_and_journal_persist(db, fresh_engine):
    models = ChatModelService(AppStateRepository(db), fresh_engine)
    assert models.current() is None and describe(None) == "réglages par défaut de l'application"
    with pytest.raises(SelectionError, match="aucune promotion"):
        models.rollback(by="t.trainer")

    first = models.promote(adapter_choice(), by="t.trainer")
    assert fresh_engine.answer_mode == "hybrid" and fresh_engine.llm.config.adapter == "/models/adapter-a"
    assert fresh_engine.llm.config.backend == "transformers"
    assert fresh_engine.llm.config.timeout == fresh_engine.config.llm.timeout  # settings not in the choice are kept
    models.promote(make_choice("extractif", "extractive", origin="evaluation:quick"), by="a.admin")
    assert fresh_engine.answer_mode == "extractive"

    again = ChatModelService(AppStateRepository(db))  # a restart reads the same state
    assert again.current()["label"] == "extractif"
    assert [e["action"] for e in again.journal()] == ["promote", "promote"]
    assert again.journal()[0]["by"] == "a.admin" and again.journal()[0]["previous"]["label"] == "adapter-a"

    restored = models.rollback(by="a.admin")
    assert restored["label"] == first["label"] and fresh_engine.answer_mode == "hybrid"
    assert models.rollback(by="a.admin") is None  # back to the settings
    assert fresh_engine.answer_mode == fresh_engine.config.answer_mode
    assert fresh_engine.llm.config == fresh_engine.config.llm
    assert [e["action"] for e in models.journal()][:2] == ["rollback", "rollback"]


def test_extractive_answers_keep_flowing_while_a_promoted_model_loads(db, fresh_engine, tmp_path):
    models = ChatModelService(AppStateRepository(db), fresh_engine)
    models.promote(adapter_choice(str(tmp_path / "missing-adapter")), by="t.trainer")
    answer = fresh_engine.answer("Comment télécharger ma facture ?")
    assert answer.mode_used == "extractive" and answer.fallback_reason  # loading or unavailable, never an error
    # Waits for the load to end (an event), however busy the machine: the guard only stops a hang.
    assert fresh_engine.llm.wait(HANG_GUARD_S) is False
    assert fresh_engine.llm.state == "unavailable"  # the adapter does not exist
    later = fresh_engine.answer("Comment télécharger ma facture ?")
    assert later.mode_used == "extractive" and later.fallback_reason.startswith("model_unavailable")
