"""A training run outliving its replica: after kill -9 of the replica that started it, no other replica starts
a second run beside it while its subprocess lives (its own heartbeat), and any replica can stop it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster.leases import DatabaseLeases
from cluster.runs import RunCoordinator
from settings import ROOT
from storage import AppStateRepository, Database
from tests.training.conftest import tiny_config_text
from training.heartbeat import beating, read_beat
from training.runner import RunnerBusy, TrainingRunner

pytestmark = pytest.mark.slow
TIMING = {"ttl": 3, "renew_every": 0.5}
REPLICA = """
import sys, time
from cluster.leases import DatabaseLeases
from cluster.runs import RunCoordinator
from storage import AppStateRepository, Database
from training.runner import TrainingRunner

db = Database(sys.argv[1])
coordinator = RunCoordinator("training", DatabaseLeases(db), AppStateRepository(db), "replica-a", ttl=3, renew_every=0.5)
print(TrainingRunner(runs_dir=sys.argv[2], coordinator=coordinator).start(sys.stdin.read()), flush=True)
time.sleep(600)
"""


def _runner(db: Database, runs_dir, owner: str) -> TrainingRunner:
    coordinator = RunCoordinator("training", DatabaseLeases(db), AppStateRepository(db), owner, **TIMING)
    return TrainingRunner(runs_dir=runs_dir, coordinator=coordinator)


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def _state(run_dir) -> str | None:
    try:
        return json.loads((run_dir / "status.json").read_text(encoding="utf-8")).get("state")
    except (OSError, ValueError):
        return None


def test_no_second_run_beside_one_whose_replica_died(db: Database, tiny_model, tiny_data, tmp_path) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    runs = tmp_path / "runs"
    replica = subprocess.Popen([sys.executable, "-c", REPLICA, url, str(runs)], cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    replica.stdin.write(tiny_config_text(tiny_model, *tiny_data, runs_dir=tmp_path, max_steps=100000))
    replica.stdin.close()
    run_dir = Path(replica.stdout.readline().strip())
    pid = None
    try:
        # The training subprocess is up and beating by itself; then its replica dies outright.
        _wait(lambda: _state(run_dir) == "running", 300, "the run started")
        pid = read_beat(run_dir)["pid"]
        os.kill(replica.pid, signal.SIGKILL)
        replica.wait(30)
        assert beating(run_dir), "the subprocess outlived its replica"

        other = _runner(db, runs, "replica-b")
        assert other.coordinator.leases.holder("run.training") is None, "the dead replica's lease is free"
        assert other.running and other.progress().state == "running" and other.progress().run == run_dir.name
        with pytest.raises(RunnerBusy, match=run_dir.name):
            other.start(tiny_config_text(tiny_model, *tiny_data, runs_dir=tmp_path, max_steps=1))
        assert other.coordinator.leases.holder("run.training") is None, "the refused start kept no lease"
        assert [r["state"] for r in other.list_runs()] == ["running"]

        assert other.cancel(timeout=10) is True  # the orphan is stopped from here (same host: its process group)
        assert not other.running and not beating(run_dir)
        second = other.start(tiny_config_text(tiny_model, *tiny_data, runs_dir=tmp_path, max_steps=1))
        assert second != run_dir
        for _ in other.stream(interval=0.5, max_seconds=300):
            pass
        assert not other.running
    finally:
        if replica.poll() is None:
            replica.kill()
            replica.wait()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
