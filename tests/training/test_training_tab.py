"""Training tab callbacks: role check, YAML validation in French, launch -> stream -> cancel through the runner."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from rag.llm.selection import ChatModelService
from storage import AppStateRepository
from tests.training.conftest import tiny_config_text
from tickets.users import StaffPrincipal, StaffService
from training.config import TrainConfig, to_yaml
from training.runner import TrainingRunner
from ui.training_tab import TrainingCallbacks, create_training_tab

PASSWORD = "correct-horse-battery"


@pytest.fixture
def services(db, tmp_path):
    runner = TrainingRunner(runs_dir=tmp_path / "runs")
    return SimpleNamespace(db=db, staff=StaffService(db), training=runner,
                           chat_models=ChatModelService(AppStateRepository(db)))


@pytest.fixture
def trainer(services):
    return services.staff.create_user("t.trainer", PASSWORD, "trainer")


def test_tab_builds_inside_blocks(services):
    with gr.Blocks():
        ui = create_training_tab(services, gr.State(None))
    assert {"editor", "start", "cancel", "plot", "runs", "use"} <= set(ui)
    assert any("smollm2-lora-cpu.yaml" in str(c) for c in ui["choice"].choices)
    assert "### model" in ui["editor"].value


def test_agents_are_refused(services):
    agent = services.staff.create_user("a.agent", PASSWORD, "agent")
    cb = TrainingCallbacks(services)
    assert "rôle" in cb.validate(agent, "training: {}")
    assert "rôle" in cb.cancel(agent)
    assert next(cb.start(agent, "training: {}"))[0].startswith("⚠️")
    assert not services.training.running


def test_validate_reports_french_errors(services, trainer):
    cb = TrainingCallbacks(services)
    message = cb.validate(trainer, "training: {max_steps: 0, optim: adam}")
    assert "Configuration invalide" in message and "training.max_steps" in message and "« adam »" in message
    assert cb.validate(trainer, cb.runner.read_config("smollm2-lora-cpu.yaml")).startswith("✅")


@pytest.mark.slow
def test_launch_stream_and_cancel(services, trainer, tiny_model, tiny_data, tmp_path):
    cb = TrainingCallbacks(services)
    text = tiny_config_text(tiny_model, *tiny_data, runs_dir=tmp_path, max_steps=100000)
    stream = cb.start(trainer, text)
    message, log, plot, runs = next(stream)
    assert "lancé" in message and services.training.running
    for message, log, plot, runs in stream:  # noqa: B007
        if len(plot):
            break
    assert "🏃" in message and set(plot["split"]) >= {"validation"}
    assert cb.cancel(trainer) == "⏹️ Entraînement annulé."
    message, *_ = next(stream)
    assert "annulé" in message and not services.training.running
    assert list(runs.columns)[:2] == ["run", "state"]


def finished_run(runs_dir: Path, name: str = "demo-20250101-000000") -> str:
    """A run folder as training leaves it: its config and a saved adapter."""
    run_dir = runs_dir / name
    (run_dir / "adapter").mkdir(parents=True)
    (run_dir / "adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")
    (run_dir / "config.yaml").write_text(to_yaml(TrainConfig()), encoding="utf-8")
    return name


def test_trainers_propose_an_adapter_admins_promote_it(services, trainer):
    """The attack: a trainer points the live chat at their adapter. It becomes a proposal for an admin."""
    run = finished_run(services.training.runs_dir)
    cb = TrainingCallbacks(services)
    message = cb.use_in_chat(trainer, run)
    assert message.startswith("📨 Proposition enregistrée") and services.chat_models.current() is None
    [proposal] = services.chat_models.proposals()
    assert proposal["by"] == "t.trainer" and proposal["choice"]["origin"] == f"training:{run}"
    forged = StaffPrincipal(trainer.user_id, trainer.username, "admin")  # the role is re-read from the DB
    assert cb.use_in_chat(forged, run).startswith("📨") and services.chat_models.current() is None
    admin = services.staff.create_user("a.admin", PASSWORD, "admin")
    assert cb.use_in_chat(admin, run).startswith("✅") and services.chat_models.current()["promoted_by"] == "a.admin"
