"""Training runs as subprocesses, for the training tab: start, stream progress, cancel, list, select.

The web process never trains: it writes the submitted config into the run folder, starts
``python -m training.train`` with an argument list (no shell) in its own process group, with an
environment scrubbed of the server's secrets (keys, tokens, passwords), sends
its output to ``console.log`` and reads the files the run writes (status.json, loss.jsonl,
metrics.json). One run at a time per runner (the app builds one runner).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from training.config import ROOT, ConfigError, TrainConfig, load_config, resolve_path
from training.heartbeat import beating, read_beat, write_beat
from training.train import (
    ADAPTER_DIR,
    CONFIG_FILE,
    METRICS_FILE,
    STATUS_FILE,
    new_run_dir,
    read_loss_log,
    set_status,
)

CONSOLE_LOG = "console.log"
SUBMITTED_CONFIG = "submitted.yaml"


class RunnerBusy(RuntimeError):
    """A run is already in progress (French message)."""


@dataclass
class RunProgress:
    """A snapshot of the current (or last) run for the UI."""

    state: str  # idle | running | finished | failed | cancelled
    run: str | None = None
    log_tail: str = ""
    losses: list[dict] = field(default_factory=list)  # {"step", "loss", "split": "train" | "validation"}
    metrics: dict | None = None
    error: str | None = None


def loss_points(run_dir: Path) -> list[dict]:
    """Train and validation loss points of a run, for a line plot."""
    points = []
    for row in read_loss_log(run_dir):
        if "loss" in row:
            points.append({"step": row["step"], "loss": row["loss"], "split": "train"})
        if "eval_loss" in row:
            points.append({"step": row["step"], "loss": row["eval_loss"], "split": "validation"})
    return points


def tail(path: Path, max_chars: int = 6000) -> str:
    """The end of a text file (what the UI shows of a run's log)."""
    if not path.is_file():
        return ""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - max_chars))
        return fh.read().decode("utf-8", errors="replace")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


# Environment variables a training or evaluation subprocess never inherits: the app's secrets.
SECRET_WORDS = ("KEY", "KEYS", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "PASS", "CREDENTIALS", "COOKIE")
SECRET_NAMES = ("MOBILIA_RAG__LLM__ENDPOINTS", "MOBILIA_REDIS_URL")  # the allow-list holds keys; the Redis URL its password
KEPT_SECRETS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")  # sent by huggingface_hub to the hub only (gated base models)


def is_secret(name: str) -> bool:
    """True for a variable that may hold a secret: *_KEY, *_TOKEN, *SECRET*, *PASSWORD*, the endpoint list."""
    upper = name.upper()
    if upper in KEPT_SECRETS:
        return False
    words = [w for w in re.split(r"_+", upper) if w]
    return (upper in SECRET_NAMES or (bool(words) and words[-1] in SECRET_WORDS)
            or any(marker in upper for marker in ("SECRET", "PASSWORD", "PASSWD")))  # fmt: skip


def child_env(secrets: dict[str, str] | None = None) -> dict[str, str]:
    """The subprocess environment: the server's minus every secret, plus only the `secrets` it needs."""
    env = {k: v for k, v in os.environ.items() if not is_secret(k)}
    return {**env, **(secrets or {}), "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}


def spawn(cmd: list[str], log_path: Path, secrets: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `cmd` (argument list, no shell) from the repo root in its own process group, output to log_path.

    The child gets a scrubbed environment (`child_env`): no secret of the server unless passed in `secrets`.
    """
    env = child_env(secrets)
    with log_path.open("ab") as console:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=console, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip


def train_command(python: str, config: TrainConfig, args: list[str]) -> list[str]:
    """`python -m training.train ARGS`, or the same under `accelerate launch` when the run asks for several processes.

    Without an accelerate config file the processes run plain DDP (NCCL on GPUs; gloo on CPU, where the
    trainer's use_cpu makes accelerate pick MULTI_CPU); with one (configs/accelerate/), what it says.
    """
    dist = config.distributed
    if dist.num_processes <= 1:
        return [python, "-m", "training.train", *args]
    launch = [python, "-m", "accelerate.commands.launch", "--num_processes", str(dist.num_processes),
              "--num_machines", "1", "--main_process_port", str(dist.main_process_port)]  # fmt: skip
    if dist.accelerate_config:
        launch += ["--config_file", str(dist.config_path())]
    else:
        precision = {"bfloat16": "bf16", "float16": "fp16"}.get(config.model.dtype, "no")
        launch += ["--multi_gpu", "--mixed_precision", precision, "--dynamo_backend", "no"]
    return [*launch, "-m", "training.train", *args]


def stop_group(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM to the process group, SIGKILL when it is still alive after `timeout` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


class SubprocessRunner:
    """What the training and evaluation runners share: a folder of YAML configs, one subprocess at a time."""

    kind = "run"  # the coordinator's lease is run.<kind>

    def __init__(self, runs_dir: str | Path, configs_dir: str | Path, python: str = sys.executable,
                 coordinator=None) -> None:  # fmt: skip
        self.runs_dir = resolve_path(runs_dir)
        self.configs_dir = resolve_path(configs_dir)
        self.python = python
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        # cluster.runs.RunCoordinator: one run of this kind across replicas, followed from any of them.
        self.coordinator = coordinator
        self._lease = None

    def config_files(self) -> list[str]:
        """Names of the shipped/saved YAML configs."""
        return sorted(p.name for p in self.configs_dir.glob("*.yaml"))

    def read_config(self, name: str) -> str:
        """Text of one config file of configs_dir."""
        path = self.configs_dir / Path(name).name
        if not path.is_file():
            raise ConfigError([f"configuration introuvable : {name}"])
        return path.read_text(encoding="utf-8")

    @property
    def running_here(self) -> bool:
        """True while this process' own subprocess lives."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def running(self) -> bool:
        """True while a run of this kind lives, here or on another replica (or left by a replica that died)."""
        if self.running_here:
            return True
        return self.coordinator is not None and (self.coordinator.running_elsewhere() or self._orphan() is not None)

    # -- coordination between replicas (no-ops without a coordinator)
    def _orphan(self) -> str | None:
        """The recorded run whose subprocess still beats though no replica holds its lease (its replica died)."""
        current = self.coordinator.current() or {}
        if current.get("state") != "running" or not current.get("path") or self.running_here:
            return None
        return current.get("run") if beating(current["path"]) else None

    def _claim(self, busy: str) -> None:
        """Take the run lease before starting (RunnerBusy with ``busy`` when another replica runs one).

        A run whose replica died holds no lease any more, but its subprocess may still live on the
        shared runs_dir: while its heartbeat is fresh, no second run starts beside it.
        """
        if self.coordinator is None:
            return
        self._lease = self.coordinator.claim()
        orphan = self._orphan() if self._lease is not None else None
        if orphan is not None:
            self.coordinator.release(self._lease)
            self._lease = None
        if self._lease is None:
            current = self.coordinator.current() or {}
            raise RunnerBusy(busy.format(run=orphan or current.get("run", "?")))

    def _started(self, run: str, path: Path) -> None:
        """Record the run for the other replicas and keep its lease while the subprocess lives."""
        if self.coordinator is None:
            return
        write_beat(path, pid=self._proc.pid)  # alive from the start; the subprocess beats itself once loaded
        self.coordinator.record(run=run, path=str(path), owner=self.coordinator.owner, state="running", cancel=None)
        threading.Thread(target=self._watch, args=(self._proc, run), name=f"{self.kind}-watch", daemon=True).start()

    def _watch(self, proc: subprocess.Popen, run: str) -> None:
        coordinator = self.coordinator
        while True:
            try:
                proc.wait(coordinator.renew_every)
                break
            except subprocess.TimeoutExpired:
                pass
            if self._lease is not None:
                self._lease = coordinator.renew(self._lease)
            if coordinator.cancel_requested(run):
                self.cancel()
        try:
            coordinator.record(state=self.progress().state, cancel=None)
        finally:
            coordinator.release(self._lease)
            self._lease = None

    def _shared_run(self) -> Path | None:
        """The run another replica started or ran last (None when this process' own run is the latest)."""
        if self.coordinator is None or self.running_here:
            return None
        current = self.coordinator.current()
        return Path(current["path"]) if current and current.get("path") else None

    def _cancel_elsewhere(self, timeout: float) -> bool:
        """Ask the replica that runs it to cancel; True once it stopped."""
        if self.coordinator is None:
            return False
        if not self.coordinator.running_elsewhere():
            return self._stop_orphan(timeout)
        current = self.coordinator.current() or {}
        self.coordinator.request_cancel(current.get("run"))
        deadline = time.monotonic() + timeout + 2 * self.coordinator.renew_every
        while time.monotonic() < deadline and self.coordinator.running_elsewhere():
            time.sleep(0.2)
        return not self.coordinator.running_elsewhere()

    def _stop_orphan(self, timeout: float) -> bool:
        """Stop a run whose replica died (its subprocess on this host only: by its heartbeat's pid)."""
        run = self._orphan()
        path = (self.coordinator.current() or {}).get("path")
        beat = read_beat(path) if run is not None and path else None
        if beat is None or beat.get("host") != socket.gethostname():
            return False
        try:
            group = os.getpgid(int(beat["pid"]))
            if group == os.getpgid(0):
                return False  # never this server's own group
            os.killpg(group, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while beating(path) and time.monotonic() < deadline:
                time.sleep(0.2)
            if beating(path):
                os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, KeyError, ValueError):
            pass
        stopped = not beating(path)
        if stopped:
            self.coordinator.record(state="cancelled", cancel=None)
        return stopped

    def progress(self):
        """A snapshot of the current or last subprocess (defined by each runner)."""
        raise NotImplementedError

    def stream(self, interval: float = 1.0, max_seconds: float | None = None) -> Iterator:
        """Yield progress every `interval` seconds while the subprocess lives, then a final snapshot."""
        deadline = time.monotonic() + max_seconds if max_seconds else None
        while self.running and (deadline is None or time.monotonic() < deadline):
            yield self.progress()
            time.sleep(interval)
        yield self.progress()


class TrainingRunner(SubprocessRunner):
    """Starts, follows and cancels `python -m training.train` subprocesses; lists the runs folder."""

    kind = "training"

    def __init__(self, runs_dir: str | Path = "runs", configs_dir: str | Path = "configs/train",
                 python: str = sys.executable, coordinator=None) -> None:  # fmt: skip
        super().__init__(runs_dir, configs_dir, python, coordinator)
        self._run_dir: Path | None = None

    @staticmethod
    def validate(text: str) -> TrainConfig:
        """Validate YAML text with the same classes as the CLI (raises ConfigError, French)."""
        return load_config(TrainConfig, text=text)

    def start(self, text: str, extra_args: list[str] | None = None) -> Path:
        """Validate `text`, create the run folder and start the training subprocess; return the run folder."""
        config = self.validate(text)
        with self._lock:
            if self.running_here:
                raise RunnerBusy(
                    f"Un entraînement est déjà en cours ({self._run_dir.name}) : annulez-le ou attendez sa fin."
                )
            self._claim("Un entraînement est déjà en cours sur une autre instance ({run}) : annulez-le ou attendez sa fin.")
            config.output.runs_dir = str(self.runs_dir)
            run_dir = new_run_dir(config)
            run_dir.mkdir(parents=True)
            (run_dir / SUBMITTED_CONFIG).write_text(text, encoding="utf-8")
            args = ["--config", str(run_dir / SUBMITTED_CONFIG), "--run-dir", str(run_dir),
                    "--set", f"output.runs_dir={self.runs_dir}", *(extra_args or [])]  # fmt: skip
            self._launch(run_dir, args, config)
            return run_dir

    def resume(self, run: str) -> Path:
        """Restart a stopped run from its last checkpoint."""
        run_dir = self.runs_dir / Path(run).name
        if not (run_dir / CONFIG_FILE).is_file():
            raise ConfigError([f"run introuvable ou jamais démarré : {run}"])
        with self._lock:
            if self.running_here:
                raise RunnerBusy(f"Un entraînement est déjà en cours ({self._run_dir.name}).")
            self._claim("Un entraînement est déjà en cours sur une autre instance ({run}).")
            self._launch(run_dir, ["--resume", str(run_dir)], load_config(TrainConfig, run_dir / CONFIG_FILE))
            return run_dir

    def _launch(self, run_dir: Path, args: list[str], config: TrainConfig) -> None:
        self._proc = spawn(train_command(self.python, config, args), run_dir / CONSOLE_LOG)
        self._run_dir = run_dir
        set_status(run_dir, "starting", pid=self._proc.pid)
        self._started(run_dir.name, run_dir)

    def cancel(self, timeout: float = 10.0) -> bool:
        """Stop the running subprocess and its children (SIGTERM to the group, SIGKILL after timeout)."""
        with self._lock:
            if not self.running_here:
                return self._cancel_elsewhere(timeout)
            stop_group(self._proc, timeout)
            set_status(self._run_dir, "cancelled", returncode=self._proc.returncode)
            return True

    def progress(self) -> RunProgress:
        """State, log tail and loss points of the current or last run (started here or on another replica)."""
        run_dir = self._shared_run() or self._run_dir
        if run_dir is None:
            return RunProgress("idle")
        status = _read_json(run_dir / STATUS_FILE) or {}
        state = status.get("state", "starting")
        here = run_dir == self._run_dir and self._proc is not None
        if here and self._proc.poll() is not None and state in ("starting", "running"):
            state = "failed" if self._proc.returncode else "finished"  # exited before writing its status
        if self.running:
            state = "running"
        return RunProgress(state=state, run=run_dir.name, log_tail=tail(run_dir / CONSOLE_LOG),
                           losses=loss_points(run_dir), metrics=_read_json(run_dir / METRICS_FILE),
                           error=status.get("error"))  # fmt: skip

    # -- past runs and chat selection
    def list_runs(self) -> list[dict]:
        """Every run folder, newest first: state, metrics, adapter path and base model."""
        runs = []
        if not self.runs_dir.is_dir():
            return runs
        for run_dir in sorted(self.runs_dir.iterdir(), key=lambda p: p.name, reverse=True):
            status = _read_json(run_dir / STATUS_FILE)
            if status is None:
                continue
            metrics = _read_json(run_dir / METRICS_FILE) or {}
            adapter = run_dir / ADAPTER_DIR
            state = status.get("state")
            current = self._shared_run() or self._run_dir
            if state in ("starting", "running") and not (self.running and run_dir == current):
                state = "interrupted"
            runs.append({
                "run": run_dir.name, "state": state, "train_loss": metrics.get("train_loss"),
                "eval_loss": metrics.get("eval_loss"), "initial_eval_loss": metrics.get("initial_eval_loss"),
                "runtime_s": metrics.get("total_runtime_s"), "steps": metrics.get("global_step"),
                "adapter": str(adapter) if (adapter / "adapter_config.json").is_file() else None,
                "base_model": metrics.get("base_model"),
            })  # fmt: skip
        return runs

    def adapter_choice(self, run: str) -> dict:
        """A finished run's adapter as a chat-model choice (hybrid: extractive fallback), for promotion."""
        from rag.llm.selection import make_choice

        run_dir = self.runs_dir / Path(run).name
        adapter = run_dir / ADAPTER_DIR
        if not (adapter / "adapter_config.json").is_file():
            raise ConfigError([f"le run {run} n'a pas d'adaptateur terminé."])
        config = load_config(TrainConfig, run_dir / CONFIG_FILE)
        metrics = _read_json(run_dir / METRICS_FILE) or {}
        llm = {"backend": "transformers", "model": config.model.name_or_path, "adapter": str(adapter)}
        return make_choice(f"adaptateur {run_dir.name}", "hybrid", llm, origin=f"training:{run_dir.name}",
                           metrics={k: metrics.get(k) for k in ("initial_eval_loss", "eval_loss", "global_step")})  # fmt: skip
