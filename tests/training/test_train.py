"""A few real SFT steps (TRL + PEFT) on a tiny Llama made locally: run folder, adapter, resume, export."""

from __future__ import annotations

import json

import pytest

from tests.training.conftest import tiny_config_text
from training.export import main as export_main
from training.train import latest_checkpoint, read_loss_log
from training.train import main as train_main

pytestmark = pytest.mark.slow


@pytest.fixture
def tiny_run(tmp_path, tiny_model, tiny_data):
    config = tmp_path / "tiny.yaml"
    config.write_text(tiny_config_text(tiny_model, *tiny_data, runs_dir=tmp_path / "runs"), encoding="utf-8")
    run_dir = tmp_path / "runs" / "tiny-test"
    assert train_main(["--config", str(config), "--run-dir", str(run_dir)]) == 0
    return run_dir


def test_run_writes_config_adapter_metrics_and_loss_log(tiny_run, tiny_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    for name in (
        "config.yaml",
        "status.json",
        "metrics.json",
        "loss.jsonl",
        "train.log",
        "adapter/adapter_config.json",
    ):
        assert (tiny_run / name).is_file(), name
    status = json.loads((tiny_run / "status.json").read_text())
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert status["state"] == "finished" and metrics["global_step"] == 4
    assert metrics["train_loss"] > 0 and metrics["eval_loss"] > 0 and metrics["initial_eval_loss"] > 0
    assert metrics["train_runtime_s"] > 0
    rows = read_loss_log(tiny_run)
    assert [r["step"] for r in rows if "loss" in r][:4] == [1, 2, 3, 4]
    assert [r["step"] for r in rows if "eval_loss" in r] == [0, 2, 4]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), str(tiny_run / "adapter"))
    assert any("lora_A" in name for name, _ in model.named_parameters())


def test_resume_continues_from_last_checkpoint(tiny_run):
    assert latest_checkpoint(tiny_run).name == "checkpoint-4"
    assert train_main(["--resume", str(tiny_run), "--set", "training.max_steps=6"]) == 0
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["global_step"] == 6 and metrics["resumed_from"].endswith("checkpoint-4")
    assert [r["step"] for r in read_loss_log(tiny_run) if "loss" in r][-2:] == [5, 6]


def test_export_adapter_and_merged(tiny_run, tmp_path):
    from transformers import AutoModelForCausalLM

    assert export_main(["--run", str(tiny_run), "--out", str(tmp_path / "adapter")]) == 0
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert export_main(["--run", str(tiny_run), "--out", str(tmp_path / "merged"), "--merge"]) == 0
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert json.loads((tmp_path / "merged" / "export.json").read_text())["merged"] is True


def test_chrf_compares_base_and_adapter(tiny_run):
    from training.chrf import compare

    result = compare(tiny_run, limit=2, max_new_tokens=4)
    assert result["examples"] == 2
    assert 0 <= result["base"]["chrf"] <= 100 and 0 <= result["adapter"]["chrf"] <= 100
    assert json.loads((tiny_run / "chrf.json").read_text())["adapter"] == result["adapter"]
