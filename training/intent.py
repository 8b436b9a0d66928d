"""Train the message classifier of `rag.intent` (question / out of scope / hand-off kinds).

    python -m training.intent [--out datasets/intent/model.npz] [--folds 5] [--c 8] [--check]

Data: `datasets/intent/*.jsonl` (customer messages written for this purpose, one label each) plus
the FAQ's own titles and phrasings as questions (those the rules read as a request are left out:
a FAQ may quote "je veux parler à un conseiller"). A multinomial logistic regression on the hashed
n-grams of `rag.intent.features`, balanced by class; k-fold cross-validation is printed as JSON
before the model is fitted on everything and written with the fingerprint of its data. `--check`
only says whether the shipped model matches the data (exit 1 when it must be retrained).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.intent import BUCKETS, DEFAULT_PATH, FEATURES_VERSION, LABELS, IntentModel, features, labelled_messages

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "datasets" / "intent"
KB_DIR = ROOT / "datasets" / "raw"


@dataclass
class IntentTrainConfig:
    """What `python -m training.intent` trains on and how."""

    data_dir: Path = DATA_DIR
    kb_dir: Path = KB_DIR
    out: Path = DEFAULT_PATH
    folds: int = 5
    c: float = 32.0  # inverse regularisation strength of the logistic regression
    seed: int = 0


def load_examples(config: IntentTrainConfig) -> list[tuple[str, str]]:
    """(text, label) pairs: the labelled files, then the FAQ phrasings as questions (deduplicated)."""
    from rag.nlu import analyze_message
    from rag.sources import load_kb

    examples = labelled_messages(Path(config.data_dir))
    for entry in load_kb(Path(config.kb_dir)):
        if entry.kind != "faq":
            continue
        for text in (entry.title, *entry.questions):
            if text.strip() and not analyze_message(text).escalation_reasons:
                examples.append((text.strip(), "question"))
    seen: set[str] = set()
    return [(t, label) for t, label in examples if not (t.lower() in seen or seen.add(t.lower()))]


def data_fingerprint(examples: list[tuple[str, str]], config: IntentTrainConfig) -> str:
    """Hash of the examples, the features and the training settings: the model is stale when it changes."""
    h = hashlib.sha256(f"features={FEATURES_VERSION};buckets={BUCKETS};c={config.c}".encode())
    for text, label in examples:
        h.update(f"{label}\t{text}\n".encode())
    return h.hexdigest()[:16]


def _matrix(texts: list[str], buckets: np.ndarray | None = None):
    """Sparse (texts x buckets) matrix over the buckets seen (or the given ones); returns it and the buckets."""
    from scipy.sparse import csr_matrix

    parts = [features(text) for text in texts]
    if buckets is None:
        buckets = np.unique(np.concatenate([ids for ids, _ in parts]))
    rows, cols, vals = [], [], []
    for row, (ids, values) in enumerate(parts):
        at = np.minimum(np.searchsorted(buckets, ids), len(buckets) - 1)
        known = buckets[at] == ids  # buckets unseen in training carry no weight
        rows.extend([row] * int(known.sum()))
        cols.extend(at[known].tolist())
        vals.extend(values[known].tolist())
    return csr_matrix((vals, (rows, cols)), shape=(len(texts), len(buckets)), dtype=np.float32), buckets


def _fit(x, y: np.ndarray, config: IntentTrainConfig):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=config.c, class_weight="balanced", max_iter=3000, random_state=config.seed).fit(x, y)


def cross_validate(examples: list[tuple[str, str]], config: IntentTrainConfig) -> dict:
    """Stratified k-fold accuracy overall, per label, and of the escalate / out-of-scope decisions."""
    from sklearn.model_selection import StratifiedKFold

    texts = [t for t, _ in examples]
    y = np.array([LABELS.index(label) for _, label in examples])
    x, _ = _matrix(texts)
    predicted = np.empty_like(y)
    folds = StratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    for train, test in folds.split(texts, y):
        model = _fit(x[train], y[train], config)
        predicted[test] = model.classes_[model.predict_proba(x[test]).argmax(axis=1)]
    handoff = y >= 2
    per_label = {label: {"n": int((y == i).sum()), "recall": round(float((predicted[y == i] == i).mean()), 3)}
                 for i, label in enumerate(LABELS) if (y == i).any()}  # fmt: skip
    return {
        "examples": len(examples),
        "accuracy": round(float((predicted == y).mean()), 4),
        "per_label": per_label,
        "escalate_decision": round(float(((predicted >= 2) == handoff).mean()), 4),
        "out_of_scope_decision": round(float(((predicted == 1) == (y == 1)).mean()), 4),
    }


def train(config: IntentTrainConfig) -> tuple[IntentModel, dict]:
    """Cross-validate, then fit on every example; the model keeps only the buckets seen in training."""
    examples = load_examples(config)
    report = cross_validate(examples, config) if config.folds > 1 else {"examples": len(examples)}
    y = np.array([LABELS.index(label) for _, label in examples])
    x, rows = _matrix([t for t, _ in examples])
    fitted = _fit(x, y, config)
    weights = np.zeros((len(rows), len(LABELS)), dtype=np.float32)
    weights[:, fitted.classes_] = fitted.coef_.T
    bias = np.full(len(LABELS), -1e4, dtype=np.float32)  # a label with no example is never predicted
    bias[fitted.classes_] = fitted.intercept_
    meta = {"labels": list(LABELS), "features_version": FEATURES_VERSION, "buckets": BUCKETS,
            "fingerprint": data_fingerprint(examples, config), "c": config.c, "cross_validation": report}  # fmt: skip
    return IntentModel(rows, weights, bias, LABELS, meta), report


def is_current(config: IntentTrainConfig) -> bool:
    """Whether the model at `config.out` was trained on today's data with today's features."""
    try:
        model = IntentModel.load(config.out)
    except (OSError, ValueError, KeyError):
        return False
    return model.meta.get("fingerprint") == data_fingerprint(load_examples(config), config)


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m training.intent`."""
    defaults = IntentTrainConfig()
    parser = argparse.ArgumentParser(prog="python -m training.intent", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=defaults.data_dir, help="labelled JSONL files")
    parser.add_argument("--kb-dir", type=Path, default=defaults.kb_dir, help="KB whose FAQ phrasings are questions")
    parser.add_argument("--out", type=Path, default=defaults.out, help="model file to write")
    parser.add_argument("--folds", type=int, default=defaults.folds, help="cross-validation folds (0: none)")
    parser.add_argument("--c", type=float, default=defaults.c, help="inverse regularisation strength")
    parser.add_argument("--check", action="store_true", help="only check the model matches the data")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Train and write the model (or check it), printing the cross-validation as JSON."""
    from logsetup import configure_cli_logging

    configure_cli_logging()
    args = make_parser().parse_args(argv)
    config = IntentTrainConfig(data_dir=args.data_dir, kb_dir=args.kb_dir, out=args.out, folds=args.folds, c=args.c)
    if args.check:
        current = is_current(config)
        print(json.dumps({"model": str(config.out), "current": current}))
        return 0 if current else 1
    model, report = train(config)
    model.save(config.out)
    print(json.dumps({"model": str(config.out), "fingerprint": model.meta["fingerprint"], **report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
