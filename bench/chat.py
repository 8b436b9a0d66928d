"""Chat benchmark: accuracy on the evaluation sets, warm latency, index build time, peak RSS, per embedding variant.

    python -m bench.chat [--backend onnx onnx-float32 torch] [--eval FILE.jsonl ...] [--repeat 3] [--failures]

For each embedding variant (`onnx`: the packaged MiniLM exported to ONNX with int8 weights, run by
onnxruntime, the default; `onnx-float32`: the same export before quantization, sentence-transformers'
vectors to 1e-5; `torch`: sentence-transformers, the first path) the index is built by
`python -m rag ingest` in its own process and the questions are answered in another one, so each
peak RSS is the one a deployed extractive chat has. The query-vector cache is cleared before every pass (the figures are
uncached); each set is answered `--repeat` times and the best pass is kept (the machine is shared),
and `cpu_ms_*` is the CPU time of the answering thread (what an answer costs, whatever else runs;
torch computes on two threads, so its figure undercounts).
With several variants, `same_decisions` says, for each one after the first, whether every question
got the same top entry, escalation and out-of-scope decision as with the first, and
`different_decisions` how many did not. Prints one JSON object, with the load average.
Targets (issue 14): extractive answer p50 <= 8 ms, p95 <= 20 ms warm on the held-out set.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# tuning, held-out, then the blind sets in the order they were written (the last one is the one measured once)
DEFAULT_SETS = ("chat_eval.jsonl", "chat_holdout.jsonl", "chat_blind.jsonl", "chat_blind2.jsonl", "chat_blind3.jsonl",
                "chat_blind4.jsonl", "chat_blind5.jsonl", "chat_blind6.jsonl",
                "chat_blind7.jsonl", "chat_blind8.jsonl", "chat_blind9.jsonl", "chat_blind10.jsonl",
                "chat_blind11.jsonl", "chat_blind12.jsonl", "chat_blind13.jsonl", "chat_blind14.jsonl",
                "chat_blind15.jsonl", "chat_blind16.jsonl", "chat_blind17.jsonl",
                "chat_blind18.jsonl", "chat_blind19.jsonl", "chat_blind20.jsonl", "chat_blind21.jsonl",
                "chat_blind22.jsonl")  # fmt: skip
# The per-set figures printed first (issue 17): all-correct, facts, escalation, scope, false promises, latency.
FIGURES = {
    "all_correct": "accuracy",
    "facts": "fact_accuracy",
    "escalation": "escalation_accuracy",
    "out_of_scope": "out_of_scope_accuracy",
    "false_promises": "false_promises",
    "p50_ms": "latency_ms_p50",
    "p95_ms": "latency_ms_p95",
}
DECISION = ("top_entry", "needs_escalation", "out_of_scope")
# Variant -> (RagConfig.embed_backend, RagConfig.embed_precision).
VARIANTS = {"onnx": ("onnx", "int8"), "onnx-float32": ("onnx", "float32"), "torch": ("torch", "float32")}


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m bench.chat`."""
    parser = argparse.ArgumentParser(prog="python -m bench.chat")
    parser.add_argument(
        "--backend",
        nargs="+",
        choices=tuple(VARIANTS),
        default=list(VARIANTS),
        help="embedding variants to measure, side by side (default: all three; the first is the reference of "
        "same_decisions)",
    )
    parser.add_argument(
        "--eval",
        type=Path,
        action="append",
        help="JSONL evaluation set (repeatable; default: chat_eval.jsonl, the tuning set, then "
        "chat_holdout.jsonl and the blind sets chat_blind*.jsonl, never used for tuning)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="passes per set; the best is kept (default 3)")
    parser.add_argument("--failures", action="store_true", help="also list the items answered wrongly")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--index-dir", type=Path, help=argparse.SUPPRESS)
    return parser


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def worker(args: argparse.Namespace, backend: str) -> dict:
    """Child process: load the engine on `backend`, answer every set, return figures and decisions."""
    t0 = time.perf_counter()
    from rag.answer import AnswerEngine
    from rag.evaluation import evaluate, load_eval_set
    from settings import get_settings

    kind, precision = VARIANTS[backend]
    config = get_settings().rag.model_copy(
        update={"index_dir": args.index_dir, "embed_backend": kind, "embed_precision": precision}
    )
    engine = AnswerEngine(config)
    engine.warm_up()
    ready_s = time.perf_counter() - t0
    sets_paths = args.eval or [p for name in DEFAULT_SETS if (p := ROOT / "datasets" / "eval" / name).exists()]
    evaluate(engine, load_eval_set(sets_paths[0])[:10])  # warm caches (stemmer, tokenizer, arenas)
    sets, decisions = {}, {}
    for path in sets_paths:
        items = load_eval_set(path)
        best = None
        for _ in range(max(1, args.repeat)):
            engine.embedder.clear_cache()
            summary, results = evaluate(engine, items)
            if best is None or summary["latency_ms_p50"] < best[0]["latency_ms_p50"]:
                best = (summary, results)
        summary, results = best
        if args.failures:
            summary["failures"] = [
                {
                    "id": r.id,
                    "question": r.question,
                    "facts_ok": r.facts_ok,
                    "escalation_ok": r.escalation_ok,
                    "scope_ok": r.scope_ok,
                    "top": r.answer.top_entry,
                    "confidence": r.answer.confidence,
                    "reasons": r.answer.escalation_reasons,
                    "oos": r.answer.out_of_scope,
                    "false_promises": r.false_promises,
                }
                for r in results
                if not r.correct
            ]
        engine.embedder.clear_cache()
        cpu_ms = []
        for item in items:  # CPU time of this thread: what an answer costs whatever else the machine runs
            started = time.thread_time()
            engine.answer(item["question"])
            cpu_ms.append((time.thread_time() - started) * 1000)
        summary["cpu_ms_p50"], summary["cpu_ms_p95"] = _percentile(cpu_ms, 0.5), _percentile(cpu_ms, 0.95)
        sets[path.stem] = summary
        decisions[path.stem] = [[getattr(r.answer, k) for k in DECISION] for r in results]
    questions = [item["question"] for item in load_eval_set(sets_paths[-1])]
    embed_ms = []
    for question in questions:
        engine.embedder.clear_cache()
        started = time.perf_counter()
        engine.embedder.encode_query(question)
        embed_ms.append((time.perf_counter() - started) * 1000)
    return {
        "backend": engine.embedder.backend,
        "precision": engine.embedder.precision if engine.embedder.backend == "onnx" else "float32",
        "sets": sets,
        "query_embedding_ms": {"p50": _percentile(embed_ms, 0.5), "p95": _percentile(embed_ms, 0.95)},
        "engine_ready_s": round(ready_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "decisions": decisions,
    }


def measure(backend: str, args: argparse.Namespace, tmp: Path) -> dict:
    """Build the index with `backend` (own process), then answer the sets with it (own process)."""
    index_dir = tmp / backend
    kind, precision = VARIANTS[backend]
    env = {**os.environ, "MOBILIA_RAG__EMBED_BACKEND": kind, "MOBILIA_RAG__EMBED_PRECISION": precision,
           "HF_HUB_OFFLINE": "1"}  # fmt: skip
    t0 = time.perf_counter()
    build = subprocess.run(
        [sys.executable, "-m", "rag", "ingest", "--rebuild", "--index-dir", str(index_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    build_s = time.perf_counter() - t0
    del build
    manifest = json.loads(next(index_dir.glob("builds/*/manifest.json")).read_text())
    command = [
        sys.executable,
        "-m",
        "bench.chat",
        "--worker",
        "--backend",
        backend,
        "--index-dir",
        str(index_dir),
        "--repeat",
        str(args.repeat),
        *(["--failures"] if args.failures else []),
    ]
    for path in args.eval or []:
        command += ["--eval", str(path)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench worker ({backend}) failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout)
    result.update(
        {"index_build_s": round(build_s, 2), "index_entries": manifest["entries"], "index_passages": manifest["views"]}
    )
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print JSON."""
    args = make_parser().parse_args(argv)
    if args.worker:
        json.dump(worker(args, args.backend[0]), sys.stdout, ensure_ascii=False)
        return 0
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        results = {backend: measure(backend, args, Path(tmp)) for backend in dict.fromkeys(args.backend)}
    out = {
        "benchmark": "chat",
        "mode": "extractive",
        "figures": {
            backend: {name: {k: summary.get(v) for k, v in FIGURES.items()} for name, summary in r["sets"].items()}
            for backend, r in results.items()
        },
        "backends": results,
    }
    decisions = {variant: r.pop("decisions") for variant, r in results.items()}
    reference, *others = decisions
    if others:
        a = decisions[reference]
        out["same_decisions"] = {v: {name: a[name] == decisions[v].get(name) for name in a} for v in others}
        out["different_decisions"] = {
            v: {name: sum(x != y for x, y in zip(a[name], decisions[v].get(name, []), strict=False)) for name in a}
            for v in others
        }
    out["load_average"] = {
        "before": [round(x, 2) for x in load_before],
        "after": [round(x, 2) for x in os.getloadavg()],
    }
    out["cpus"] = os.cpu_count()
    json.dump(out, sys.stdout, ensure_ascii=False, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
