"""Evaluation tab callbacks: role checks, results shown side by side (escaped), promotion and rollback."""

from __future__ import annotations

import json
from types import SimpleNamespace

import gradio as gr
import pytest

from rag.answer import AnswerEngine
from rag.llm.selection import ChatModelService
from storage import AppStateRepository
from tests.training.test_evaluate import EXTRACTIVE, config_text
from tickets.users import StaffService
from training.config import EvalConfig, load_config
from training.eval_runner import EvaluationRunner
from training.evaluate import RESULTS_FILE, run_evaluation
from ui.evaluation_format import highlight
from ui.evaluation_tab import EvaluationCallbacks, create_evaluation_tab

PASSWORD = "correct-horse-battery"


@pytest.fixture
def engine_copy(shipped_config, embedder):
    return AnswerEngine(shipped_config, embedder)


@pytest.fixture
def services(db, tmp_path, engine_copy):
    return SimpleNamespace(db=db, staff=StaffService(db), evaluation=EvaluationRunner(runs_dir=tmp_path / "runs"),
                           chat_models=ChatModelService(AppStateRepository(db), engine_copy))  # fmt: skip


@pytest.fixture
def results(tmp_path, engine_copy):
    """An extractive evaluation written in tmp runs/, one answer made hostile to check escaping."""
    config = load_config(EvalConfig, text=config_text(tmp_path, EXTRACTIVE, name="ui"))
    data = run_evaluation(config, engine=engine_copy)
    data["items"][0]["answers"]["extractif"]["text"] = "<script>alert(1)</script> Espace Abonné"
    (tmp_path / "runs" / "eval-ui" / RESULTS_FILE).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return data


@pytest.fixture
def trainer(services):
    return services.staff.create_user("t.trainer", PASSWORD, "trainer")


def test_tab_builds_inside_blocks(services):
    with gr.Blocks():
        ui = create_evaluation_tab(services, gr.State(None))
    assert {"start", "cancel", "table", "chart", "answers", "promote", "rollback", "journal"} <= set(ui)
    assert ui["choice"].value == "quick.yaml" and "extractif" in ui["candidates"].value


def test_agents_are_refused(services, results):
    agent = services.staff.create_user("a.agent", PASSWORD, "agent")
    cb = EvaluationCallbacks(services)
    assert "rôle" in next(cb.start(agent, "", ["extractif"], ["validation"], 1, 1))[0]
    assert "rôle" in cb.show(agent, "ui")[-1]
    assert "rôle" in cb.promote(agent, "ui", "extractif")[0]
    assert "rôle" in cb.rollback(agent)[0]
    assert services.chat_models.current() is None and not services.evaluation.running
    evaluator = services.staff.create_user("e.evaluator", PASSWORD, "evaluator")
    assert cb.promote(evaluator, "ui", "extractif")[0].startswith("✅") and cb.rollback(evaluator)[0].startswith("↩️")


def test_results_side_by_side_then_promote_and_roll_back(services, trainer, results, engine_copy):
    cb = EvaluationCallbacks(services)
    choices = cb.refresh(trainer)[0]["choices"]
    assert ("ui", "ui") in choices or "ui" in choices
    table, chart, question, answers, candidate, summary = cb.show(trainer, "ui")
    assert list(table["candidat"]) == ["extractif"] and "faits" in table.columns
    assert chart.data and question["value"] and candidate["choices"] and "Question" in answers
    assert "validation : 2" in summary
    html = cb.answers(trainer, "ui", results["items"][0]["id"])
    assert "<script>" not in html and "&lt;script&gt;" in html and "<ins" in html  # differences marked, escaped
    assert "Référence" in html

    message, current, journal = cb.promote(trainer, "ui", "extractif")
    assert message.startswith("✅") and "extractif" in current and len(journal) == 1
    assert services.chat_models.current()["origin"].startswith("evaluation:ui@")
    message, current, journal = cb.rollback(trainer)
    assert message.startswith("↩️") and "réglages par défaut" in current
    assert journal["action"].iloc[0] == "retour arrière"
    assert "aucune promotion" in cb.rollback(trainer)[0]
    assert "choisissez" in cb.promote(trainer, "ui", None)[0]


def test_start_refuses_empty_choices(services, trainer):
    cb = EvaluationCallbacks(services)
    text = services.evaluation.read_config("quick.yaml")
    assert "au moins un candidat" in next(cb.start(trainer, text, [], ["validation"], 1, 1))[0]
    assert "au moins un jeu" in next(cb.start(trainer, text, ["extractif"], [], 1, 1))[0]


def test_highlight_marks_words_absent_from_the_reference():
    out = highlight("Allez dans l'Espace Abonné <b>vite</b>", "Allez dans l'Espace Abonné, rubrique Mes factures")
    assert '<ins class="eval-add">' in out and "&lt;b&gt;vite&lt;/b&gt;" in out and "rubrique Mes factures" in out


def test_loading_a_config_fills_candidates_and_set_sizes(services, trainer):
    cb = EvaluationCallbacks(services)
    text, candidates, val_limit, eval_limit, message = cb.load(trainer, "quick.yaml")
    assert "### candidates" in text and candidates["value"] == ["extractif", "smollm2-base", "smollm2-adapter"]
    assert (val_limit, eval_limit, message) == (4, 4, "")
    assert "introuvable" in cb.load(trainer, "nope.yaml")[-1]
