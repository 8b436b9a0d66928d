"""Chat benchmark: accuracy on the evaluation set, warm latency, index build time, peak RSS.

    python -m bench.chat [--eval FILE.jsonl ...] [--failures]

Prints one JSON object. Targets (issue 2): accuracy, escalation and out-of-scope >= 0.95,
p50 < 50 ms warm, peak RSS < 800 MB for the answering process (the index build, a separate
`python -m rag ingest` process here as in deployment, reports its own peak).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m bench.chat`."""
    parser = argparse.ArgumentParser(prog="python -m bench.chat")
    parser.add_argument(
        "--eval", type=Path, action="append",
        help="JSONL evaluation set (repeatable; default: chat_eval.jsonl, the tuning set, and "
        "chat_holdout.jsonl, never used for tuning)",
    )
    parser.add_argument("--failures", action="store_true", help="also list the items answered wrongly")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print JSON."""
    args = make_parser().parse_args(argv)
    eval_sets = args.eval or [ROOT / "datasets" / "eval" / "chat_eval.jsonl", ROOT / "datasets" / "eval" / "chat_holdout.jsonl"]
    with tempfile.TemporaryDirectory() as tmp:
        # The build runs as its own process (as `python -m rag ingest` does) so that the serving
        # process' peak RSS below is the one a deployed extractive chat has.
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "rag", "ingest", "--rebuild", "--index-dir", tmp],
            cwd=ROOT, check=True, capture_output=True,
        )
        build_wall_s = time.perf_counter() - t0
        build_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        manifest = json.loads(next(Path(tmp, "builds").glob("*/manifest.json")).read_text())

        t0 = time.perf_counter()
        from rag.answer import AnswerEngine
        from rag.evaluation import evaluate, load_eval_set
        from settings import get_settings

        engine = AnswerEngine(get_settings().rag.model_copy(update={"index_dir": Path(tmp)}))
        engine.warm_up()
        ready_s = time.perf_counter() - t0
        evaluate(engine, load_eval_set(eval_sets[0])[:10])  # warm caches (stemmer, tokenizer)
        sets = {}
        for path in eval_sets:
            summary, results = evaluate(engine, load_eval_set(path))
            if args.failures:
                summary["failures"] = [
                    {"id": r.id, "question": r.question, "facts_ok": r.facts_ok, "escalation_ok": r.escalation_ok,
                     "scope_ok": r.scope_ok, "top": r.answer.top_entry, "confidence": r.answer.confidence,
                     "reasons": r.answer.escalation_reasons, "oos": r.answer.out_of_scope}
                    for r in results if not r.correct
                ]
            sets[path.stem] = summary
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "benchmark": "chat",
        "mode": "extractive",
        "sets": sets,
        "index_build_s": round(build_wall_s, 2),
        "index_build_peak_rss_mb": round(build_peak_mb, 1),
        "index_entries": manifest["entries"],
        "index_passages": manifest["views"],
        "engine_ready_s": round(ready_s, 2),
        "peak_rss_mb": round(peak_rss_mb, 1),
    }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
