"""Evaluation tab callbacks: role checks, results shown side by side (escaped), proposals, promotion and rollback."""

from __future__ import annotations

import json
from types import SimpleNamespace

import gradio as gr
import pytest

from rag.answer import AnswerEngine
from rag.llm.selection import ChatModelService
from storage import AppStateRepository
from tests.training.test_evaluate import EXTRACTIVE, config_text
from tickets.users import StaffPrincipal, StaffService
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


@pytest.fixture
def admin(services):
    return services.staff.create_user("a.admin", PASSWORD, "admin")


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
    assert "rôle" in cb.accept(agent, "x")[0] and "rôle" in cb.reject(agent, "x")[0]
    assert services.chat_models.current() is None and not services.evaluation.running
    assert services.chat_models.proposals() == []


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

    admin = services.staff.create_user("a.admin", PASSWORD, "admin")
    message, current, journal, _ = cb.promote(admin, "ui", "extractif")
    assert message.startswith("✅") and "extractif" in current and len(journal) == 1
    assert services.chat_models.current()["origin"].startswith("evaluation:ui@")
    message, current, journal, _ = cb.rollback(admin)
    assert message.startswith("↩️") and "réglages par défaut" in current
    assert journal["action"].iloc[0] == "retour arrière"
    assert "aucune promotion" in cb.rollback(admin)[0]
    assert "choisissez" in cb.promote(admin, "ui", None)[0]


def test_start_refuses_empty_choices(services, trainer):
    cb = EvaluationCallbacks(services)
    text = services.evaluation.read_config("quick.yaml")
    assert "au moins un candidat" in next(cb.start(trainer, text, [], ["validation"], 1, 1))[0]
    assert "au moins un jeu" in next(cb.start(trainer, text, ["extractif"], [], 1, 1))[0]
    assert "non autorisé" in next(cb.start(trainer, text, ["extractif"], ["validation"], 1, 1, ["nowhere"]))[0]
    assert not services.evaluation.running


@pytest.mark.parametrize("role", ["evaluator", "trainer"])
def test_only_admins_change_the_chat_model_others_propose(services, results, engine_copy, role):
    """The attack: a trainer or evaluator points the live chat at a candidate of their choosing."""
    cb = EvaluationCallbacks(services)
    user = services.staff.create_user(f"x.{role}", PASSWORD, role)
    message, _, journal, proposals = cb.promote(user, "ui", "extractif")
    assert message.startswith("📨 Proposition enregistrée") and proposals["choices"] == []  # not theirs to accept
    assert services.chat_models.current() is None and engine_copy.answer_mode == "extractive"
    assert journal["action"].iloc[0] == "proposition" and journal["par"].iloc[0] == f"x.{role}"
    pending = services.chat_models.proposals()
    assert len(pending) == 1
    for attempt in (cb.accept(user, pending[0]["id"]), cb.reject(user, pending[0]["id"]), cb.rollback(user)):
        assert "Seul un administrateur" in attempt[0]
    forged = StaffPrincipal(user.user_id, user.username, "admin")  # a tampered role is re-read from the DB
    assert "Seul un administrateur" in cb.accept(forged, pending[0]["id"])[0]
    assert cb.promote(forged, "ui", "extractif")[0].startswith("📨")
    assert services.chat_models.current() is None and len(services.chat_models.proposals()) == 2


def test_admins_see_proposals_and_accept_or_reject_them(services, results, trainer, admin):
    cb = EvaluationCallbacks(services)
    cb.promote(trainer, "ui", "extractif")
    cb.promote(trainer, "ui", "extractif")
    assert cb.refresh(trainer)[3]["choices"] == []
    proposals = cb.refresh(admin)[3]
    assert len(proposals["choices"]) == 2 and "proposé par t.trainer" in proposals["choices"][0][0]
    first, second = (value for _, value in proposals["choices"])
    message, current, journal, proposals = cb.accept(admin, first)
    assert message.startswith("✅ Proposition acceptée") and "extractif" in current
    chosen = services.chat_models.current()
    assert chosen["promoted_by"] == "a.admin" and chosen["proposed_by"] == "t.trainer"
    assert len(proposals["choices"]) == 1 and journal["action"].iloc[0] == "promotion"
    message, current, journal, proposals = cb.reject(admin, second)
    assert message.startswith("🗑️") and proposals["choices"] == [] and journal["action"].iloc[0] == "proposition refusée"
    assert "introuvable" in cb.accept(admin, second)[0]
    assert cb.rollback(admin)[0].startswith("↩️") and services.chat_models.current() is None


def test_a_rogue_endpoint_url_from_the_tab_is_refused(services, tmp_path, llm_peer, monkeypatch):
    """The attack through the UI: an evaluator edits the YAML to send the live key to their own server."""
    rogue = llm_peer()
    monkeypatch.setenv("MOBILIA_RAG__LLM__API_KEY", "sk-live-secret")
    evaluator = services.staff.create_user("e.evaluator", PASSWORD, "evaluator")
    text = config_text(tmp_path, EXTRACTIVE + f"  - {{name: rogue, kind: llm, backend: openai, base_url: {rogue.url}}}\n")
    cb = EvaluationCallbacks(services)
    message = next(cb.start(evaluator, text, ["extractif", "rogue"], ["validation"], 1, 1))[0]
    assert "n'est pas un endpoint LLM autorisé" in message and "sk-live-secret" not in message
    assert not services.evaluation.running and rogue.requests == []


def test_allow_listed_endpoints_are_offered_by_name(services, monkeypatch):
    monkeypatch.setenv("MOBILIA_RAG__LLM__ENDPOINTS", '[{"name": "vllm", "base_url": "https://llm.example/v1", '
                       '"model": "mistral", "api_key": "sk-v"}]')  # fmt: skip
    with gr.Blocks():
        ui = create_evaluation_tab(services, gr.State(None))
    labels = [str(c) for c in ui["endpoints"].choices]
    assert any("vllm" in c and "mistral" in c for c in labels) and not any("llm.example" in c or "sk-v" in c for c in labels)


def test_highlight_marks_words_absent_from_the_reference():
    out = highlight("Allez dans l'Espace Abonné <b>vite</b>", "Allez dans l'Espace Abonné, rubrique Mes factures")
    assert '<ins class="eval-add">' in out and "&lt;b&gt;vite&lt;/b&gt;" in out and "rubrique Mes factures" in out


def test_loading_a_config_fills_candidates_and_set_sizes(services, trainer):
    cb = EvaluationCallbacks(services)
    text, candidates, val_limit, eval_limit, message = cb.load(trainer, "quick.yaml")
    assert "### candidates" in text and candidates["value"] == ["extractif", "smollm2-base", "smollm2-adapter"]
    assert (val_limit, eval_limit, message) == (4, 4, "")
    assert "introuvable" in cb.load(trainer, "nope.yaml")[-1]
