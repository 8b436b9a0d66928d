"""Training past one process: a run config asking for 2 processes is started with `accelerate launch`
(DDP over gloo on this CPU) on the tiny model; both ranks train, rank 0 alone writes the run's files."""

from __future__ import annotations

import json
import socket

import pytest

from tests.training.conftest import tiny_config_text
from training.config import TrainConfig, load_config
from training.runner import TrainingRunner, train_command


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _distributed(text: str, processes: int, port: int, accelerate_config: str = "") -> str:
    return text + (f"### distributed\ndistributed:\n  num_processes: {processes}\n  main_process_port: {port}\n"
                   f"  accelerate_config: '{accelerate_config}'\n")  # fmt: skip


def test_command_is_plain_for_one_process_and_accelerate_for_more(tiny_model, tiny_data, tmp_path) -> None:
    text = tiny_config_text(tiny_model, *tiny_data, runs_dir=tmp_path)
    assert train_command("py", load_config(TrainConfig, text=text), ["--x"]) == ["py", "-m", "training.train", "--x"]
    cmd = train_command("py", load_config(TrainConfig, text=_distributed(text, 2, 29600)), ["--x"])
    assert cmd[:3] == ["py", "-m", "accelerate.commands.launch"] and cmd[-3:] == ["-m", "training.train", "--x"]
    assert "--multi_gpu" in cmd and cmd[cmd.index("--num_processes") + 1] == "2"
    for name in ("ddp.yaml", "deepspeed-zero2.yaml", "deepspeed-zero3.yaml", "fsdp.yaml"):  # shipped, selectable by name
        shipped = load_config(TrainConfig, text=_distributed(text, 2, 29600, name))
        assert train_command("py", shipped, [])[cmd.index("--main_process_port") + 2:][:2] == [
            "--config_file", str(shipped.distributed.config_path())]
    with pytest.raises(Exception, match="introuvable"):
        load_config(TrainConfig, text=_distributed(text, 2, 29600, "../../etc/passwd"))


@pytest.mark.slow
def test_two_cpu_processes_train_one_adapter(tiny_model, tiny_data, tmp_path) -> None:
    runner = TrainingRunner(runs_dir=tmp_path / "runs")
    text = _distributed(tiny_config_text(tiny_model, *tiny_data, runs_dir=tmp_path, max_steps=4), 2, _free_port())
    run_dir = runner.start(text)
    states = [p.state for p in runner.stream(interval=0.5, max_seconds=600)]
    log = (run_dir / "console.log").read_text(encoding="utf-8", errors="replace")
    assert states[-1] == "finished", log[-3000:]
    for rank in (0, 1):  # both ranks joined one process group of 2 and trained every step
        assert f"process {rank}/2 trained 4 steps" in log, log[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["global_step"] == 4
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    assert len(list(run_dir.glob("**/adapter_model.safetensors"))) >= 1
    assert len(list((run_dir / "adapter").glob("adapter_model*"))) == 1, "one adapter"
    rows = [json.loads(line) for line in (run_dir / "loss.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in rows if "loss" in r]
    assert train_steps == sorted(set(train_steps)) and train_steps[-1] == 4, "each step's loss logged once"
