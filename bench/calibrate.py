"""Calibration curves of the confidence and out-of-scope thresholds (rag/calibration.py).

    python -m bench.calibrate [--folds 5]

Data: the KB's own phrasing variants asked against indexes built without them (in-domain,
unseen paraphrases), the tuning set (chat_eval.jsonl) and generic out-of-scope questions
(chat_negatives.jsonl). The held-out and blind sets are never read. The out-of-scope rule compares
best fused score + w x share of known words to a threshold per domain-word class ("weak": only
everyday words such as téléphone/compte/prix; "none"). Prints one JSON object: the weight w with
the fewest errors over both classes, and per class its curve and the suggested threshold (fewest
errors, middle of the run of equally good thresholds); the min-confidence curve (share answered,
share right when answered); and the values configured now.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "datasets" / "eval"


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m bench.calibrate`."""
    parser = argparse.ArgumentParser(prog="python -m bench.calibrate")
    parser.add_argument("--folds", type=int, default=5, help="folds over the KB's phrasing variants")
    return parser


def _grid(lo: float, hi: float, step: float = 0.01) -> list[float]:
    return [round(lo + i * step, 3) for i in range(round((hi - lo) / step) + 1)]


def main(argv: list[str] | None = None) -> int:
    """Collect the examples, print the curves as JSON."""
    args = make_parser().parse_args(argv)
    from rag.answer import AnswerEngine
    from rag.calibration import best_threshold, confidence_curve, eval_set_examples, scope_curve, variant_examples
    from rag.evaluation import facts_found, load_eval_set
    from rag.index import build_index
    from rag.sources import load_kb
    from settings import get_settings

    with tempfile.TemporaryDirectory() as tmp:
        config = get_settings().rag.model_copy(update={"index_dir": Path(tmp)})
        engine = AnswerEngine(config)
        build_index(config, engine.embedder)
        retriever = engine.retriever
        answers = {e.id: e.answer for e in retriever.index.entries}

        def judge(item: dict, top: str) -> bool:
            return facts_found(answers[top], item.get("expected_facts", []))

        examples = variant_examples(load_kb(config.kb_dir), config, engine.embedder, folds=args.folds)
        examples += eval_set_examples(load_eval_set(EVAL / "chat_eval.jsonl"), retriever, "chat_eval", judge)
        examples += eval_set_examples(load_eval_set(EVAL / "chat_negatives.jsonl"), retriever, "chat_negatives")

    grid = _grid(0.3, 1.2)
    weights = [round(0.1 * i, 1) for i in range(6)]

    def total_errors(weight: float) -> int:
        return sum(best_threshold(scope_curve(examples, d, grid, weight))[1] for d in ("weak", "none"))

    weight = min(weights, key=lambda w: (total_errors(w), w))
    scope = {"known_weight": weight, "errors_by_weight": {str(w): total_errors(w) for w in weights}}
    for domain in ("weak", "none"):
        curve = scope_curve(examples, domain, grid, weight)
        pool = [e for e in examples if e.domain == domain and not e.ruled]
        threshold, errors = best_threshold(curve)
        scope[domain] = {
            "in_domain": sum(e.in_scope for e in pool),
            "out_of_scope": sum(not e.in_scope for e in pool),
            "suggested_threshold": threshold,
            "errors": errors,
            "curve": [p for p in curve if round(p["threshold"] * 100) % 4 == 0],
        }
    out = {
        "benchmark": "calibrate",
        "examples": {src: sum(e.source == src for e in examples) for src in ("kb_variants", "chat_eval", "chat_negatives")},
        "out_of_scope": scope,
        "min_confidence": confidence_curve(examples, _grid(0.3, 0.6, 0.02)),
        "configured": {
            "out_of_scope_confidence": config.out_of_scope_confidence,
            "out_of_scope_weak_confidence": config.out_of_scope_weak_confidence,
            "out_of_scope_known_weight": config.out_of_scope_known_weight,
            "min_confidence": config.min_confidence,
        },
    }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
