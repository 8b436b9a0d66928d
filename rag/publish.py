"""Publishing a KB change behind an evaluation gate, and rolling it back.

Publishing builds a candidate index of the working copy, answers the project's evaluation sets
(`datasets/eval/chat_eval.jsonl` + `chat_holdout.jsonl`) with it and with the published index, and
refuses when all-correct drops by more than `publish_max_drop` points or when an answer starts
making a false promise (rag/evaluation.py, rag/promises.py). The questions whose verdict changed are
listed either way. An admin may override a refusal; the override is written in the KB journal.
A passing candidate's build is moved into the index folder and swapped in atomically (no second
embedding pass); replicas are told through the `on_change` hook (the cluster's `kb_index` topic).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from rag.index import build_index, current_build, fingerprint
from rag.kb import KbError, KnowledgeBase
from rag.sources import Entry
from settings import ROOT

log = logging.getLogger(__name__)
EVAL_SETS = (ROOT / "datasets" / "eval" / "chat_eval.jsonl", ROOT / "datasets" / "eval" / "chat_holdout.jsonl")
PUBLISHERS = ("admin", "trainer")


@dataclass
class GateResult:
    """The verdict of the gate on one candidate."""

    passed: bool
    baseline: float  # all-correct of the published KB, in points (0-100)
    candidate: float
    max_drop: float
    changed: list[dict] = field(default_factory=list)  # {id, question, before, after, before_entry, after_entry}
    false_promises: list[str] = field(default_factory=list)  # ids of questions now making a false promise
    reasons: list[str] = field(default_factory=list)  # French, why it was refused

    def to_dict(self) -> dict:
        """JSON-friendly form (stored with the published version)."""
        return self.__dict__.copy()

    def summary(self) -> str:
        """One French line."""
        verdict = "✅ validé" if self.passed else "⛔ refusé"
        points = lambda v: f"{v:.1f}".replace(".", ",")  # noqa: E731 (French decimal comma)
        return (f"{verdict} — tout-correct {points(self.baseline)} → {points(self.candidate)} points "
                f"(baisse tolérée : {self.max_drop:g}), {len(self.changed)} question(s) changée(s)")  # fmt: skip


def _false_promise(result) -> bool:
    """Whether rag/evaluation.py found a false promise in this item's answer (``ItemResult.false_promises``)."""
    return bool(result.false_promises)


class Publisher:
    """Evaluate, publish, roll back; the index in service follows the published version."""

    def __init__(self, kb: KnowledgeBase, embedder=None, eval_sets: tuple[Path, ...] = EVAL_SETS) -> None:
        self.kb = kb
        self.config = kb.config
        self.embedder = embedder
        self.eval_sets = eval_sets
        self.on_change = None  # called after a publish/rollback is in service here (tells other replicas)
        self._lock = threading.Lock()
        self._baseline: tuple[str, dict] | None = None  # (fingerprint, {id: result}) of the published KB

    def _items(self) -> list[dict]:
        from rag.evaluation import load_eval_set

        return [item for path in self.eval_sets for item in load_eval_set(path)]

    def _evaluate(self, index_dir: Path, entries: list[Entry]) -> dict:
        """{id: ItemResult} of the extractive engine over a build of `entries` in index_dir."""
        from rag.answer import AnswerEngine
        from rag.evaluation import evaluate

        config = self.config.model_copy(update={"index_dir": index_dir, "answer_mode": "extractive"})
        build_index(config, self.embedder, entries=entries)
        engine = AnswerEngine(config, self.embedder)
        _, results = evaluate(engine, self._items())
        return {r.id: r for r in results}

    def candidate_dir(self) -> Path:
        """A fresh folder for a candidate index, on the index's file system (so it can be moved in)."""
        base = self.config.index_dir / "candidates"
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="cand-", dir=base))

    def gate(self, entries: list[Entry], candidate_dir: Path) -> GateResult:
        """Compare the candidate `entries` with the published KB on the evaluation sets."""
        published = self.kb.published_entries()
        key = fingerprint(self.config, published)
        if self._baseline is None or self._baseline[0] != key:
            base_dir = Path(tempfile.mkdtemp(prefix="base-", dir=candidate_dir.parent))
            try:
                self._baseline = (key, self._evaluate(base_dir, published))
            finally:
                shutil.rmtree(base_dir, ignore_errors=True)
        before = self._baseline[1]
        after = self._evaluate(candidate_dir, entries)
        points = lambda rs: round(100 * sum(r.correct for r in rs.values()) / max(1, len(rs)), 2)  # noqa: E731
        result = GateResult(True, points(before), points(after), self.config.publish_max_drop)
        for item_id, new in after.items():
            old = before.get(item_id)
            if old is None or old.correct != new.correct or old.answer.top_entry != new.answer.top_entry:
                result.changed.append({"id": item_id, "question": new.question,
                                       "before": bool(old and old.correct), "after": new.correct,
                                       "before_entry": old.answer.top_entry if old else None,
                                       "after_entry": new.answer.top_entry})  # fmt: skip
            if _false_promise(new) and not (old and _false_promise(old)):
                result.false_promises.append(item_id)
        if result.baseline - result.candidate > result.max_drop:
            drop = f"{result.baseline - result.candidate:.1f}".replace(".", ",")
            result.reasons.append(f"le tout-correct baisse de {drop} points "
                                  f"(tolérance {result.max_drop:g}).")  # fmt: skip
        if result.false_promises:
            result.reasons.append(f"fausse promesse dans : {', '.join(result.false_promises)}.")
        result.passed = not result.reasons
        return result

    def candidate_entries(self) -> list[Entry]:
        """What would be published: the working copy, without agents' proposals no editor has taken up."""
        proposed = self.kb.repo.proposed_ids()
        return [e for e in self.kb.working_entries() if e.id not in proposed]

    def publish(self, *, author: str, role: str, override: bool = False, note: str = "") -> GateResult:
        """Gate the working copy and publish it if it passes (or an admin overrides); returns the verdict."""
        if role not in PUBLISHERS:
            raise KbError("Seuls les formateurs et les administrateurs publient la base.")
        if override and role != "admin":
            raise KbError("Seul un administrateur peut publier malgré un refus de l'évaluation.")
        with self._lock:
            entries = self.candidate_entries()
            if not entries:
                raise KbError("la base de travail est vide.")
            candidate_dir = self.candidate_dir()
            try:
                result = self.gate(entries, candidate_dir)
                if not result.passed and not override:
                    return result
                action = "publish" if result.passed else "override"
                self.kb._publish_snapshot(entries, author=author, note=note, action=action, gate=result.to_dict())
                self._adopt(candidate_dir)
            finally:
                shutil.rmtree(candidate_dir, ignore_errors=True)
        self._changed()
        return result

    def rollback(self, *, author: str, role: str) -> int:
        """Serve the previous publication again; returns its version id."""
        if role not in PUBLISHERS:
            raise KbError("Seuls les formateurs et les administrateurs publient la base.")
        with self._lock:
            version = self.kb.rollback(author=author)
            build_index(self.config, self.embedder, entries=self.kb.published_entries())
        self._changed()
        return version

    def _adopt(self, candidate_dir: Path) -> None:
        """Move the candidate's build into the index folder and point CURRENT at it (atomic swap)."""
        build = current_build(candidate_dir)
        builds = self.config.index_dir / "builds"
        builds.mkdir(parents=True, exist_ok=True)
        os.replace(build, builds / build.name)
        pointer = self.config.index_dir / f".CURRENT.{os.getpid()}"
        pointer.write_text(build.name)
        os.replace(pointer, self.config.index_dir / "CURRENT")
        manifest = json.loads((builds / build.name / "manifest.json").read_text())
        log.info("KB published: build %s (%d entries)", build.name, manifest["entries"])
        for old in builds.iterdir():
            if old.name != build.name and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()
