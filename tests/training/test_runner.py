"""The run service behind the training tab: a real subprocess started, streamed, cancelled, listed, selected."""

from __future__ import annotations

import pytest

from rag.llm.selection import ChatModelService
from storage import AppStateRepository
from tests.training.conftest import tiny_config_text
from training.config import ConfigError
from training.runner import RunnerBusy, TrainingRunner

pytestmark = pytest.mark.slow


@pytest.fixture
def runner(tmp_path, db):
    return TrainingRunner(runs_dir=tmp_path / "runs")


def test_invalid_config_is_refused_before_any_process(runner):
    with pytest.raises(ConfigError, match=r"training\.max_steps"):
        runner.start("training: {max_steps: -1}")
    assert not runner.running and runner.list_runs() == []


def test_start_stream_cancel(runner, tiny_model, tiny_data, tmp_path):
    text = tiny_config_text(tiny_model, *tiny_data, runs_dir=tmp_path / "elsewhere", max_steps=100000)
    run_dir = runner.start(text)
    assert run_dir.parent == runner.runs_dir and runner.running
    with pytest.raises(RunnerBusy):
        runner.start(text)
    seen = None
    for progress in runner.stream(interval=0.5, max_seconds=120):
        seen = progress
        if progress.losses:  # training really started: cancel it
            break
    assert seen is not None and seen.state == "running" and seen.losses
    assert runner.cancel() is True
    final = runner.progress()
    assert final.state == "cancelled" and not runner.running
    assert final.log_tail.strip()  # the tail shows the latest output; the start of the run is in the full log
    full_log = (run_dir / "console.log").read_text(encoding="utf-8", errors="replace")
    assert "run tiny" in full_log or "INFO" in full_log
    assert runner.list_runs()[0]["state"] == "cancelled"
    assert runner.cancel() is False


def test_finished_run_is_listed_and_used_in_chat(runner, tiny_model, tiny_data, tmp_path, db):
    run_dir = runner.start(tiny_config_text(tiny_model, *tiny_data, runs_dir=tmp_path, max_steps=2))
    states = [p.state for p in runner.stream(interval=0.5, max_seconds=180)]
    assert states[-1] == "finished", runner.progress().log_tail
    run = runner.list_runs()[0]
    assert run["run"] == run_dir.name and run["adapter"] and run["eval_loss"] > 0
    choice = runner.adapter_choice(run_dir.name)
    assert choice["llm"]["adapter"].endswith("adapter") and choice["llm"]["backend"] == "transformers"
    assert choice["answer_mode"] == "hybrid" and choice["origin"] == f"training:{run_dir.name}"
    models = ChatModelService(AppStateRepository(db))
    assert models.promote(choice, by="t.trainer")["llm"] == choice["llm"] == models.current()["llm"]


def test_adapter_choice_needs_an_adapter(runner):
    with pytest.raises(ConfigError, match="adaptateur"):
        runner.adapter_choice("nope")
