"""Evaluation runs as subprocesses, for the evaluation tab: start, follow, cancel, list past results.

Like training, the web process never loads the compared models: it writes the chosen config into
runs/eval-<name>/, starts ``python -m training.evaluate --progress`` (argument list, own process
group, environment scrubbed of the server's secrets: only the keys of the allow-listed endpoints
the candidates name are passed) and reads progress.json, then results.json.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from training.config import (
    ROOT,
    CandidateArgs,
    ConfigError,
    EvalConfig,
    candidate_endpoint,
    from_dict,
    llm_settings,
    load_config,
    resolve_path,
    to_dict,
    to_yaml,
)
from training.evaluate import CONFIG_FILE, PROGRESS_FILE, RESULTS_FILE, output_dir, read_results
from training.runner import CONSOLE_LOG, RunnerBusy, SubprocessRunner, _read_json, spawn, stop_group, tail

SETS = {  # choice shown in the tab -> what it sets in the config
    "validation": "Validation (réponses de référence)",
    "datasets/eval/chat_holdout.jsonl": "Jeu held-out (faits, escalade)",
    "datasets/eval/chat_eval.jsonl": "Jeu de réglage (faits, escalade)",
}


@dataclass
class EvalProgress:
    """A snapshot of the current (or last) evaluation for the UI."""

    state: str  # idle | running | finished | failed | cancelled
    name: str | None = None
    done: int = 0
    total: int = 0
    candidate: str | None = None
    log_tail: str = ""
    errors: list[str] = field(default_factory=list)


def adapter_candidates(runs_dir: Path) -> list[CandidateArgs]:
    """One candidate per finished training run (its adapter on the packaged base, RAG prompt)."""
    found = sorted(runs_dir.glob("*/adapter/adapter_config.json"), key=lambda p: p.parent.parent.name, reverse=True)
    return [
        CandidateArgs(name=f"adapter-{p.parent.parent.name}", kind="llm", backend="transformers",
                      adapter=str(p.parent.relative_to(ROOT) if p.is_relative_to(ROOT) else p.parent))
        for p in found
    ]  # fmt: skip


ENDPOINT_PREFIX = "endpoint-"


def endpoint_candidates() -> list[CandidateArgs]:
    """One candidate per endpoint of the admins' allow-list (picked by name, RAG prompt)."""
    return [CandidateArgs(name=f"{ENDPOINT_PREFIX}{name}", kind="llm", backend="openai", endpoint=name)
            for name in llm_settings().endpoint_entries()]  # fmt: skip


def endpoint_choices() -> list[tuple[str, str]]:
    """(label, name) of the allow-listed endpoints for the tab's drop-down (no URL, no key)."""
    return [(f"{name} — {entry.model}", name) for name, entry in llm_settings().endpoint_entries().items()]


def endpoint_secrets(config: EvalConfig) -> dict[str, str]:
    """The only secrets the evaluation subprocess gets: the keys of the endpoints its candidates name."""
    from settings import DEFAULT_ENDPOINT

    llm = llm_settings()
    used = {candidate_endpoint(c, llm) for c in config.candidates if c.kind == "llm" and c.backend == "openai"}
    named = [e for e in llm.endpoints if e.name in used]
    env = {"MOBILIA_RAG__LLM__ENDPOINTS": json.dumps([  # always set: also masks a list kept in .env
        {**e.model_dump(exclude={"api_key"}), "api_key": e.api_key.get_secret_value() if e.api_key else None}
        for e in named
    ])}  # fmt: skip
    key = llm.bound_api_key()
    if DEFAULT_ENDPOINT in used and key is not None:
        env["MOBILIA_RAG__LLM__API_KEY"] = key.get_secret_value()
    return env


def customize(text: str, candidates: list[str] | None = None, sets: list[str] | None = None,
              validation_limit: int | None = None, eval_limit: int | None = None, name: str | None = None,
              runs_dir: Path | None = None, endpoints: list[str] | None = None) -> EvalConfig:  # fmt: skip
    """The YAML config narrowed to the tab's choices (candidates by name, incl. trained adapters and
    allow-listed endpoints; sets; sizes)."""
    config = load_config(EvalConfig, text=text)
    data = to_dict(config)
    if endpoints:
        known = {c.endpoint: c.name for c in endpoint_candidates()}
        unknown = [n for n in endpoints if n not in known]
        if unknown:
            raise ConfigError([f"endpoint LLM non autorisé : {', '.join(unknown)} / not in the allow-list."])
        candidates = [*(candidates or []), *(known[n] for n in endpoints if known[n] not in (candidates or []))]
    if candidates is not None:
        pool = {c.name: c for c in config.candidates}
        pool |= {c.name: c for c in adapter_candidates(runs_dir or resolve_path(config.evaluation.runs_dir))}
        pool |= {c.name: c for c in endpoint_candidates() if c.name not in pool}
        missing = [n for n in candidates if n not in pool]
        if missing:
            raise ConfigError([f"candidat inconnu : {', '.join(missing)}."])
        data["candidates"] = [dataclasses.asdict(pool[n]) for n in candidates]
    if sets is not None:
        data["sets"]["validation_file"] = config.sets.validation_file if "validation" in sets else ""
        data["sets"]["eval_files"] = [s for s in sets if s != "validation"]
    if validation_limit is not None:
        data["sets"]["validation_limit"] = int(validation_limit)
    if eval_limit is not None:
        data["sets"]["eval_limit"] = int(eval_limit)
    if name:
        data["evaluation"]["name"] = name
    if runs_dir is not None:
        data["evaluation"]["runs_dir"] = str(runs_dir)
    return from_dict(EvalConfig, data)


class EvaluationRunner(SubprocessRunner):
    """Starts, follows and cancels `python -m training.evaluate` subprocesses; lists past results."""

    kind = "evaluation"

    def __init__(self, runs_dir: str | Path = "runs", configs_dir: str | Path = "configs/eval",
                 python: str = sys.executable, coordinator=None) -> None:  # fmt: skip
        super().__init__(runs_dir, configs_dir, python, coordinator)
        self._out: Path | None = None
        self._cancelled = False

    def _load(self, text: str) -> EvalConfig:
        """A config as the runner will run it: results under this runner's runs_dir (like ``start``)."""
        return load_config(EvalConfig, text=text, overrides=[f"evaluation.runs_dir={self.runs_dir}"])

    def candidate_names(self, text: str) -> tuple[list[str], list[str]]:
        """(candidates of the YAML, trained adapters available) for the tab's check boxes."""
        config = self._load(text)
        return [c.name for c in config.candidates], [c.name for c in adapter_candidates(self.runs_dir)]

    def set_sizes(self, text: str) -> tuple[int, int]:
        """(validation_limit, eval_limit) of a config, to pre-fill the tab."""
        config = self._load(text)
        return config.sets.validation_limit, config.sets.eval_limit

    def start(self, text: str, **choices) -> Path:
        """Validate the narrowed config, write it to runs/eval-<name>/config.yaml, start the subprocess."""
        config = customize(text, runs_dir=self.runs_dir, **choices)
        with self._lock:
            if self.running_here:
                raise RunnerBusy(f"Une évaluation est déjà en cours ({self._out.name}) : annulez-la ou attendez sa fin.")
            self._claim("Une évaluation est déjà en cours sur une autre instance ({run}) : annulez-la ou attendez sa fin.")
            out = output_dir(config)
            out.mkdir(parents=True, exist_ok=True)
            for stale in (RESULTS_FILE, PROGRESS_FILE, CONSOLE_LOG):
                (out / stale).unlink(missing_ok=True)
            (out / CONFIG_FILE).write_text(to_yaml(config), encoding="utf-8")
            cmd = [self.python, "-m", "training.evaluate", "--config", str(out / CONFIG_FILE), "--progress"]
            # Scrubbed environment: the child resolves the endpoints by name and gets only their keys.
            proc = spawn(cmd, out / CONSOLE_LOG, secrets=endpoint_secrets(config))
            self._proc, self._out, self._cancelled = proc, out, False
            self._started(out.name, out)
            return out

    def cancel(self, timeout: float = 10.0) -> bool:
        """Stop the running evaluation (process group)."""
        with self._lock:
            if not self.running_here:
                return self._cancel_elsewhere(timeout)
            stop_group(self._proc, timeout)
            self._cancelled = True
            return True

    def progress(self) -> EvalProgress:
        """State and counters of the current or last evaluation."""
        shared = self._shared_run()  # a run started on another replica (or its last one)
        out = shared if shared is not None and shared != self._out else self._out
        if out is None:
            return EvalProgress("idle")
        data = _read_json(out / PROGRESS_FILE) or {}
        if self.running:
            state = "running"
        elif out != self._out:  # ran elsewhere: the state its replica recorded
            state = (self.coordinator.current() or {}).get("state", "failed")
        elif self._cancelled:
            state = "cancelled"
        else:
            state = "finished" if self._proc.returncode == 0 and (out / RESULTS_FILE).is_file() else "failed"
        errors = [data["error"]] if data.get("error") else []
        return EvalProgress(state=state, name=out.name.removeprefix("eval-"), done=data.get("done", 0),
                            total=data.get("total", 0), candidate=data.get("candidate"),
                            log_tail=tail(out / CONSOLE_LOG, 4000), errors=errors)  # fmt: skip

    def list_results(self) -> list[dict]:
        """Finished evaluations, newest first: name, date, questions, candidates."""
        rows = []
        for path in self.runs_dir.glob(f"eval-*/{RESULTS_FILE}"):
            try:
                results = read_results(path)
            except (OSError, ValueError):
                continue
            rows.append({"name": results["name"], "created_at": results["created_at"],
                         "questions": sum(s["items"] for s in results["sets"]),
                         "candidates": ", ".join(results["metrics"])})  # fmt: skip
        return sorted(rows, key=lambda r: r["created_at"], reverse=True)

    def results(self, name: str) -> dict:
        """results.json of runs/eval-<name>/."""
        path = self.runs_dir / f"eval-{Path(name).name}" / RESULTS_FILE
        if not path.is_file():
            raise ConfigError([f"aucun résultat pour l'évaluation « {name} »."])
        return read_results(path)
