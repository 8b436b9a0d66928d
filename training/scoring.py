"""Text scores of generated answers through the project's own `evaluate` metric modules (training/metrics/).

The modules are loaded from a local path, offline, once per process. Corpus scores: chrF and BLEU (0-100,
sacrebleu), ROUGE-1/2/L (0-1, French-aware tokenization); `sentence_chrf` gives a per-answer chrF for display.
"""

from __future__ import annotations

import os
import threading
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

# The tokenizer lives next to the rouge_fr script, which imports it relatively (evaluate copies it along),
# so scoring and the metric share one implementation. It is standard library only: importing it is cheap.
from training.metrics.rouge_fr.french_tokenizer import french_tokens

if TYPE_CHECKING:
    import evaluate

__all__ = ["METRICS_DIR", "french_tokens", "load_metric", "sentence_chrf", "text_scores"]

METRICS_DIR = Path(__file__).resolve().parent / "metrics"
# A loaded EvaluationModule buffers its inputs between add/compute: one compute at a time per process.
_COMPUTE_LOCK = threading.Lock()


@cache
def load_metric(name: str) -> evaluate.EvaluationModule:
    """The metric module training/metrics/<name>/<name>.py, loaded offline and kept for the process."""
    script = METRICS_DIR / name / f"{name}.py"
    if not script.is_file():
        known = sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file())
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(known)}")
    # Read by evaluate / huggingface_hub when they are first imported, so set before the import.
    os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import evaluate

    return evaluate.load(str(METRICS_DIR / name), keep_in_memory=True)


def text_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Corpus chrF, BLEU (0-100) and ROUGE-1/2/L F-measures (0-1); {} for an empty corpus."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        return {}
    inputs = {"predictions": predictions, "references": references}
    with _COMPUTE_LOCK:
        rouge = load_metric("rouge_fr").compute(**inputs)
        return {
            "chrf": load_metric("chrf").compute(**inputs)["score"],
            "bleu": load_metric("bleu").compute(**inputs)["score"],
            "rougeL": rouge["rougeL"],
            "rouge1": rouge["rouge1"],
            "rouge2": rouge["rouge2"],
        }


def sentence_chrf(prediction: str, reference: str) -> float:
    """chrF (0-100) of one answer against its reference, same settings as the chrf module."""
    from sacrebleu.metrics import CHRF

    return CHRF().sentence_score(prediction, [reference]).score
