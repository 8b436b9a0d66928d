"""Compare candidates (extractive baseline, base LM, adapters, an HTTP endpoint) on held-out questions.

    python -m training.evaluate --config configs/eval/quick.yaml
    python -m training.evaluate --config configs/eval/full.yaml --set sets.eval_limit=20

Every candidate answers the same questions: the validation split (reference answers: chrF, BLEU,
ROUGE-L) and the evaluation sets (expected facts, escalation and scope labels). Metrics come from
the project's `evaluate` modules (training/metrics/, loaded from a local path). Writes
runs/eval-<name>/results.json (every answer kept), results.md and progress.json (read by the tab).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from logsetup import configure_cli_logging
from training.config import (
    CandidateArgs,
    ConfigError,
    DataBuildConfig,
    EvalConfig,
    add_config_arguments,
    candidate_endpoint,
    load_config,
    overrides_from_args,
    resolve_path,
    to_yaml,
)
from training.heartbeat import start_beating

log = logging.getLogger(__name__)

RESULTS_FILE, REPORT_FILE, PROGRESS_FILE, CONFIG_FILE = "results.json", "results.md", "progress.json", "config.yaml"
DATA_CONFIG = "configs/data/default.yaml"
Progress = Callable[[dict], None]


def output_dir(config: EvalConfig) -> Path:
    """runs/eval-<name>/."""
    return resolve_path(config.evaluation.runs_dir) / f"eval-{config.evaluation.name}"


def spread(items: list, limit: int) -> list:
    """`limit` items evenly spaced over the list (all when limit is 0): reproducible, covers every category."""
    if not limit or limit >= len(items):
        return items
    return [items[i * len(items) // limit] for i in range(limit)]


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def ensure_validation_split(path: Path) -> None:
    """Build the dataset (configs/data/default.yaml) when the validation split is missing."""
    if path.is_file():
        return
    from training.data import build

    data_config = load_config(DataBuildConfig, DATA_CONFIG)
    if resolve_path(data_config.output.out_dir) != path.parent:
        raise ConfigError([f"sets.validation_file introuvable ({path}) ; lancez `python -m training.data build`."])
    log.info("validation split missing: building the dataset with %s", DATA_CONFIG)
    build(data_config)


def load_questions(config: EvalConfig) -> list[dict]:
    """Items of every set: {set, id, question, reference, expected_facts, expect_escalation, out_of_scope, category}."""
    sets = config.sets
    items: list[dict] = []
    if sets.validation_file:
        path = resolve_path(sets.validation_file)
        ensure_validation_split(path)
        for i, row in enumerate(spread(_read_jsonl(path), sets.validation_limit)):
            turns = row["messages"]
            items.append({
                "set": "validation", "id": f"val-{i:03d}-{row.get('source', '')}".rstrip("-"),
                "question": next(m["content"] for m in turns if m["role"] == "user"),
                "reference": turns[-1]["content"], "expected_facts": [], "expect_escalation": None,
                "out_of_scope": None, "category": row.get("category"),
            })  # fmt: skip
    for file in sets.eval_files:
        path = resolve_path(file)
        for row in spread(_read_jsonl(path), sets.eval_limit):
            items.append({
                "set": path.stem, "id": row["id"], "question": row["question"], "reference": None,
                "expected_facts": row.get("expected_facts", []), "expect_escalation": bool(row.get("expect_escalation")),
                "out_of_scope": bool(row.get("out_of_scope")), "category": row.get("category"),
            })  # fmt: skip
    return items


def latest_adapter(runs_dir: Path) -> Path | None:
    """Adapter of the newest training run that finished one."""
    runs = [p for p in runs_dir.glob("*/adapter/adapter_config.json") if not p.parent.parent.name.startswith("eval-")]
    return max(runs, key=lambda p: p.stat().st_mtime).parent if runs else None


def candidate_llm(candidate: CandidateArgs, config: EvalConfig) -> dict:
    """The LLMConfig overrides of a candidate (also what a promotion records)."""
    if candidate.kind == "extractive":
        return {}
    adapter = candidate.adapter
    if adapter == "latest":
        found = latest_adapter(resolve_path(config.evaluation.runs_dir))
        if found is None:
            raise ConfigError([f"candidat {candidate.name} : aucun run d'entraînement terminé (adapter: latest)."])
        adapter = str(found)
    elif adapter:
        adapter = str(resolve_path(adapter))
        if not (Path(adapter) / "adapter_config.json").is_file():
            raise ConfigError([f"candidat {candidate.name} : adaptateur introuvable ({candidate.adapter})."])
    llm = {"backend": candidate.backend, "model": candidate.model, "adapter": adapter,
           "quantization": candidate.quantization, "max_new_tokens": config.generation.max_new_tokens}  # fmt: skip
    if candidate.backend == "openai":  # by name only: URL, model and key come from the settings' allow-list
        llm = {"backend": "openai", "endpoint": candidate_endpoint(candidate),
               "max_new_tokens": config.generation.max_new_tokens}  # fmt: skip
    return {k: v for k, v in llm.items() if v is not None}


class CandidateRunner:
    """Answers questions as one candidate would, through the app's own answer engine."""

    def __init__(self, engine, candidate: CandidateArgs, llm: dict, config: EvalConfig) -> None:
        self.engine, self.candidate, self.llm, self.config = engine, candidate, llm, config
        self.load_seconds = 0.0

    def load(self) -> None:
        """Point the engine at the candidate's backend and wait for it (load time reported apart)."""
        from rag.llm.selection import llm_config

        if self.candidate.kind == "extractive":
            self.engine.use_model("extractive", self.engine.config.llm)
            return
        base = self.engine.config.llm
        gen = self.config.generation
        overrides = {**self.llm, "max_seconds": gen.max_seconds, "threads": gen.threads or None, "preload": True}
        start = time.perf_counter()
        self.engine.use_model("generative", llm_config(base, overrides))
        if not self.engine.llm.wait():
            raise RuntimeError(self.engine.llm.error or "model unavailable")
        self.load_seconds = round(time.perf_counter() - start, 2)

    def answer(self, question: str) -> dict:
        """One answer with what the metrics need."""
        if self.candidate.prompt == "plain":
            return self._plain(question)
        answer = self.engine.answer(question, mode="extractive" if self.candidate.kind == "extractive" else "generative")
        return {
            "text": answer.text, "mode_used": answer.mode_used, "fallback_reason": answer.fallback_reason,
            "draft": answer.draft, "latency_ms": answer.latency_ms, "escalated": answer.needs_escalation,
            "out_of_scope": answer.out_of_scope, "sources": [s.id for s in answer.sources],
        }  # fmt: skip

    def _plain(self, question: str) -> dict:
        """The question alone with the fine-tuning system prompt (no retrieval, no rules)."""
        from training.config import ProcessingArgs

        messages = [{"role": "system", "content": ProcessingArgs().system_prompt}, {"role": "user", "content": question}]
        start = time.perf_counter()
        try:
            text = "".join(self.engine.llm.backend.stream(messages)).strip()
            error = None
        except Exception as exc:  # a failed answer is recorded, the evaluation goes on
            text, error = "", f"error: {exc}"
        return {"text": text, "mode_used": "plain", "fallback_reason": error, "draft": None, "escalated": None,
                "latency_ms": round((time.perf_counter() - start) * 1000, 2), "out_of_scope": None, "sources": []}  # fmt: skip


def score_item(item: dict, answer: dict) -> dict:
    """Per-answer verdicts shown next to it: facts found/missing, decisions, chrF against the reference."""
    from rag.evaluation import facts_found
    from training.scoring import sentence_chrf

    found = [f for f in item["expected_facts"] if facts_found(answer["text"], [f])]
    answer["facts_found"] = found
    answer["facts_missing"] = [f for f in item["expected_facts"] if f not in found]
    answer["escalation_ok"] = (
        None if item["expect_escalation"] is None or answer["escalated"] is None
        else answer["escalated"] == item["expect_escalation"]
    )  # fmt: skip
    answer["chrf"] = round(sentence_chrf(answer["text"], item["reference"]), 2) if item["reference"] else None
    # What the model itself wrote, even when the guard-rails replaced it by the extractive answer.
    answer["generated"] = answer["draft"] or (answer["text"] if answer["mode_used"] in ("generative", "plain") else None)
    return answer


def summarize(items: list[dict], name: str) -> dict:
    """Metrics of one candidate over `items`, computed with the project's evaluate modules."""
    from training.scoring import load_metric, text_scores

    answers = [(i, i["answers"][name]) for i in items if name in i["answers"]]
    metrics: dict = {"answered": len(answers)}
    for prefix, field in (("", "text"), ("gen_", "generated")):  # shown answers, then raw generations
        scored = [(i, a[field] or "") for i, a in answers if field == "text" or a[field] is not None]
        with_ref = [(i, t) for i, t in scored if i["reference"]]
        if with_ref:
            scores = text_scores([t for _, t in with_ref], [i["reference"] for i, _ in with_ref])
            metrics |= {f"{prefix}{k}": round(v, 4) for k, v in scores.items() if k in ("chrf", "bleu", "rougeL")}
        with_facts = [(i, t) for i, t in scored if i["expected_facts"]]
        if with_facts:
            facts = load_metric("fact_recall").compute(
                predictions=[t for _, t in with_facts], references=[i["expected_facts"] for i, _ in with_facts]
            )
            metrics[f"{prefix}fact_recall"] = round(facts["fact_recall"], 4)
    labelled = [(i, a) for i, a in answers if i["expect_escalation"] is not None and a["escalated"] is not None]
    if labelled:
        esc = load_metric("escalation_accuracy").compute(
            predictions=[a["escalated"] for _, a in labelled], references=[i["expect_escalation"] for i, _ in labelled]
        )
        metrics["escalation_accuracy"] = round(esc["accuracy"], 4)
        scope = [a["out_of_scope"] == i["out_of_scope"] for i, a in labelled]
        metrics["out_of_scope_accuracy"] = round(sum(scope) / len(scope), 4)
    if answers:
        latency = load_metric("latency").compute(predictions=[a["latency_ms"] for _, a in answers])
        metrics["latency_ms_p50"], metrics["latency_ms_p95"] = round(latency["p50"], 1), round(latency["p95"], 1)
        fallbacks = [a for _, a in answers if a["fallback_reason"]]
        metrics["fallback_rate"] = round(len(fallbacks) / len(answers), 4)
    return metrics


class ProgressFile:
    """progress.json, rewritten atomically: the evaluation tab polls it while the subprocess runs."""

    def __init__(self, path: Path, total: int) -> None:
        self.path, self.total, self.done, self.started = path, total, 0, time.time()

    def __call__(self, update: dict) -> None:
        self.done = update.get("done", self.done)
        data = {"total": self.total, "done": self.done, "elapsed_s": round(time.time() - self.started, 1), **update}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.path)


def run_evaluation(config: EvalConfig, progress: Progress | None = None, engine=None,
                   items: list[dict] | None = None) -> dict:  # fmt: skip
    """Answer every question with every candidate, score, write results.json + results.md; return the results."""
    from rag.answer import AnswerEngine
    from settings import get_settings

    out = output_dir(config)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(to_yaml(config), encoding="utf-8")
    items = items if items is not None else load_questions(config)
    for item in items:
        item["answers"] = {}
    engine = engine or AnswerEngine(get_settings().rag)
    engine.warm_up()
    report = progress or (lambda update: None)
    total, done, started = len(items) * len(config.candidates), 0, time.time()
    candidates = []
    for candidate in config.candidates:
        entry = {**asdict(candidate), "status": "ok", "error": None, "load_seconds": 0.0}
        candidates.append(entry)
        report({"done": done, "candidate": candidate.name, "state": "loading"})
        try:
            entry["llm"] = candidate_llm(candidate, config)
            runner = CandidateRunner(engine, candidate, entry["llm"], config)
            runner.load()
            entry["load_seconds"] = runner.load_seconds
        except Exception as exc:  # one broken candidate (no adapter, endpoint down) must not sink the others
            entry["status"], entry["error"] = "failed", str(exc)
            log.warning("candidate %s skipped: %s", candidate.name, exc)
            done += len(items)
            report({"done": done, "candidate": candidate.name, "state": "failed", "error": str(exc)})
            continue
        for item in items:
            item["answers"][candidate.name] = score_item(item, runner.answer(item["question"]))
            done += 1
            report({"done": done, "candidate": candidate.name, "state": "answering", "item": item["id"]})
        engine.use_model("extractive", engine.config.llm)  # free the model before loading the next one
    set_names = list(dict.fromkeys(i["set"] for i in items))
    names = [c["name"] for c in candidates if c["status"] == "ok"]
    results = {
        "name": config.evaluation.name,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration_s": round(time.time() - started, 1),
        "config": json.loads(json.dumps(asdict(config))),
        "sets": [{"name": s, "items": sum(i["set"] == s for i in items)} for s in set_names],
        "candidates": candidates,
        "metrics": {n: summarize(items, n) for n in names},
        "per_set": {s: {n: summarize([i for i in items if i["set"] == s], n) for n in names} for s in set_names},
        "items": items,
    }
    write_results(out, results)
    report({"done": total, "state": "finished"})
    return results


def write_results(out: Path, results: dict) -> None:
    """results.json and results.md, each written to a temporary file then renamed."""
    for name, text in ((RESULTS_FILE, json.dumps(results, ensure_ascii=False, indent=1)),
                       (REPORT_FILE, markdown_report(results))):  # fmt: skip
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out / name)


METRIC_LABELS = {
    "chrf": "chrF", "bleu": "BLEU", "rougeL": "ROUGE-L", "fact_recall": "faits", "escalation_accuracy": "escalade",
    "out_of_scope_accuracy": "hors sujet", "latency_ms_p50": "p50 ms", "latency_ms_p95": "p95 ms",
    "fallback_rate": "repli", "gen_chrf": "chrF généré", "gen_rougeL": "ROUGE-L généré",
    "gen_fact_recall": "faits générés", "answered": "réponses",
}  # fmt: skip


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and abs(value) < 1:
        return f"{value:.3f}"
    return f"{value:.1f}" if isinstance(value, float) and value != int(value) else f"{value:g}"


def _md(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def markdown_report(results: dict) -> str:
    """The metrics table (overall and per set), failed candidates, then every question with every answer."""
    sets = ", ".join(f"{s['name']}: {s['items']}" for s in results["sets"])
    total = sum(s["items"] for s in results["sets"])
    lines = [f"# Évaluation `{results['name']}`", "",
             f"{results['created_at']} — {total} questions ({sets}), {results['duration_s']} s.", ""]  # fmt: skip
    keys = [k for k in METRIC_LABELS if any(k in m for m in results["metrics"].values())]
    for title, table in [("Ensemble", results["metrics"]), *((f"Jeu `{s}`", t) for s, t in results["per_set"].items())]:
        lines += [f"## {title}", "", "| candidat | " + " | ".join(METRIC_LABELS[k] for k in keys) + " |",
                  "|---" * (len(keys) + 1) + "|"]  # fmt: skip
        lines += [f"| {n} | " + " | ".join(_cell(m.get(k)) for k in keys) + " |" for n, m in table.items()]
        lines.append("")
    for c in results["candidates"]:
        if c["status"] != "ok":
            lines.append(f"- ⚠️ {c['name']} non évalué : {_md(c['error'])}")
    lines += ["", "## Réponses", ""]
    for item in results["items"]:
        lines += [f"### {item['id']} ({item['set']})", "", f"**Question** : {_md(item['question'])}", ""]
        if item["reference"]:
            lines += [f"**Référence** : {_md(item['reference'])}", ""]
        if item["expected_facts"]:
            lines += [f"**Faits attendus** : {', '.join(item['expected_facts'])}", ""]
        for name, a in item["answers"].items():
            extra = f" _(repli : {_md(a['fallback_reason'])})_" if a["fallback_reason"] else ""
            lines.append(f"- **{name}** ({a['latency_ms']:.0f} ms){extra} : {_md(a['text'])}")
            if a.get("draft"):
                lines.append(f"  - texte généré, écarté : {_md(a['draft'])}")
        lines.append("")
    return "\n".join(lines)


def promotion_choice(results: dict, name: str) -> dict:
    """The chat-model choice for one evaluated candidate (hybrid for LLMs: extractive fallback kept)."""
    from rag.llm.selection import SelectionError, make_choice

    candidate = next((c for c in results["candidates"] if c["name"] == name), None)
    if candidate is None or candidate["status"] != "ok":
        raise SelectionError(f"le candidat « {name} » n'a pas été évalué avec succès dans « {results['name']} ».")
    if candidate["prompt"] == "plain":
        raise SelectionError(f"« {name} » a été évalué sans contexte (prompt plain) : le chat répond toujours avec "
                             "le contexte de la base ; évaluez-le avec prompt: rag avant de le promouvoir.")  # fmt: skip
    metrics = results["metrics"].get(name, {})
    origin = f"evaluation:{results['name']}@{results['created_at']}"
    if candidate["kind"] == "extractive":
        return make_choice(f"{name} (extractif)", "extractive", {}, origin=origin, metrics=metrics)
    return make_choice(name, "hybrid", candidate["llm"], origin=origin, metrics=metrics)


def read_results(path: str | Path) -> dict:
    """A results.json (or the folder holding it)."""
    path = resolve_path(path)
    path = path / RESULTS_FILE if path.is_dir() else path
    return json.loads(path.read_text(encoding="utf-8"))


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    add_config_arguments(parser, EvalConfig)
    parser.add_argument("--progress", action="store_true", help="Write progress.json in the output folder.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    configure_cli_logging("INFO")
    try:
        config = load_config(EvalConfig, args.config, overrides_from_args(args))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    from tqdm import tqdm

    out = output_dir(config)
    out.mkdir(parents=True, exist_ok=True)
    start_beating(out)  # the evaluation is seen alive from every replica, even if the one that started it dies
    for stale in (RESULTS_FILE, REPORT_FILE, PROGRESS_FILE):  # a previous run's results are replaced, never mixed
        (out / stale).unlink(missing_ok=True)
    try:
        items = load_questions(config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    total = len(items) * len(config.candidates)
    writer = ProgressFile(out / PROGRESS_FILE, total) if args.progress else None
    bar = tqdm(total=total, unit="réponse", desc=config.evaluation.name, file=sys.stderr)

    def progress(update: dict) -> None:
        if writer is not None:
            writer(update)
        bar.set_postfix_str(f"{update.get('candidate', '')} {update.get('state', '')}")
        bar.n = update.get("done", bar.n)
        bar.refresh()

    results = run_evaluation(config, progress, items=items)
    bar.close()
    print(markdown_report(results).split("\n## Réponses")[0])
    print(f"\nRésultats : {out / RESULTS_FILE}\nRapport : {out / REPORT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
