"""Datasets tab callbacks: the role is re-checked in every callback; review, approve, build with its report."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from rag.kb import KnowledgeBase
from settings import RagConfig
from tests.conftest import write_mini_kb
from tests.training.test_data import PII, _pii_conversations
from tickets.users import StaffPrincipal, StaffService
from training.config import to_yaml
from ui.datasets_tab import DatasetsCallbacks, create_datasets_tab

PASSWORD = "correct-horse-battery"


@pytest.fixture
def services(db, tmp_path: Path):
    rag = RagConfig(kb_dir=write_mini_kb(tmp_path / "kb"), index_dir=tmp_path / "index")
    kb = KnowledgeBase(db, rag)
    kb.ensure_seeded()
    _pii_conversations(db)
    return SimpleNamespace(db=db, kb=kb, staff=StaffService(db),
                           settings=SimpleNamespace(rag=rag, database_url=str(db.url), data_config=None))  # fmt: skip


@pytest.fixture
def callbacks(services, tmp_path: Path) -> DatasetsCallbacks:
    from tests.training.test_data import _config

    path = tmp_path / "data.yaml"
    path.write_text(to_yaml(_config(tmp_path, str(services.db.url))), encoding="utf-8")
    return DatasetsCallbacks(services, config_path=path)


def test_tab_builds_inside_blocks(services) -> None:
    with gr.Blocks():
        ui = create_datasets_tab(services, gr.State(None))
    assert {"queue", "approve", "reject", "build", "chart", "preview"} <= set(ui)


@pytest.mark.parametrize("role", ["agent", "evaluator", None])
def test_other_roles_are_refused_in_every_callback(services, callbacks: DatasetsCallbacks, role) -> None:
    who = services.staff.create_user("x.user", PASSWORD, role) if role else None
    trainer = services.staff.create_user("t.trainer", PASSWORD, "trainer")
    found, _, _ = callbacks.refresh(trainer)  # what a trainer's page would hold
    assert found
    assert callbacks.refresh(who)[2].startswith("⚠️")
    assert callbacks.open(who, found, 1)[-1].startswith("⚠️")
    message = callbacks.decide(who, found, 1, "q", "Réponse.", "forfait", "training", "", approve=True)[2]
    assert message.startswith("⚠️") and callbacks.queue.repo.decided_keys() == set()
    assert callbacks.decide(who, found, 1, "", "", "", "", "", approve=False)[2].startswith("⚠️")
    summary, figure, _ = callbacks.build(who)
    assert summary.startswith("⚠️") and figure is None


def test_a_role_changed_after_login_takes_effect_at_once(services, callbacks: DatasetsCallbacks, db) -> None:
    from storage.models import StaffUser

    trainer = services.staff.create_user("t.trainer", PASSWORD, "trainer")
    found, _, _ = callbacks.refresh(trainer)
    with db.write() as session:
        session.get(StaffUser, trainer.user_id).role = "agent"
    stale = StaffPrincipal(trainer.user_id, trainer.username, "trainer")  # what the page's state still says
    assert callbacks.decide(stale, found, 1, "q", "Réponse.", "", "training", "", approve=True)[2].startswith("⚠️")
    assert callbacks.queue.repo.decided_keys() == set()


def test_review_then_build(services, callbacks: DatasetsCallbacks) -> None:
    trainer = services.staff.create_user("t.trainer", PASSWORD, "trainer")
    found, rows, message = callbacks.refresh(trainer)
    assert message == f"{len(found)} élément(s) à revoir." and len(rows) == len(found) == 2
    n = next(i for i, c in enumerate(found, start=1) if c["source"] == "escalation")
    question, context, reference, category, _ = callbacks.open(trainer, found, n)
    assert "relancé le prélèvement" in context and reference.startswith("Bonjour [nom]")
    fresh, rows, message, *form = callbacks.decide(trainer, found, n, question, reference + " Appelez le 06 12 34 56 78.",
                                                   category, "training", "", approve=True)  # fmt: skip
    assert message.startswith("✅") and message.endswith("1 élément(s) restant(s).") and len(fresh) == len(rows) == 1
    assert form == ["", "", "", ""]  # the form is emptied
    assert callbacks.queue.repo.list()[0].reference_answer.endswith("Appelez le [téléphone].")
    assert callbacks.decide(trainer, found, 99, "", "", "", "training", "", approve=True)[2].startswith("⚠️")
    summary, figure, preview = callbacks.build(trainer)
    assert "**Entraînement**" in summary and "Anonymisation" in summary and "revues approuvées : 3" in summary  # question + 2 variations
    assert len(figure.data) == 4 and preview and not PII.search(str(preview))
