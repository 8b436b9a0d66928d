"""Label customer questions with the KB entry that answers them (or as out of scope), for the index to learn
their phrasing.

    python -m training.answered [--sets FILE.jsonl ...] [--out datasets/answered/questions.jsonl]

Customers do not write like the FAQ: SMS style, long stories, other words for the same thing. Each
question of the development sets whose expected facts an entry's answer has becomes one more phrasing of
that entry (`rag.index.make_views`, dense side only): the next customer who writes the same way finds it.
An entry answers a question when its answer holds every expected fact: the entry the engine answered
with when it is right, else the best of the first `--depth` retrieval hits that holds them. Hand-offs,
questions without facts, answered from two entries (a two-part question) or that no entry among the
first hits answers are left out. Out-of-scope questions are kept as such: they join the labelled
examples' off-topic side (`scope_examples`), so the customers' own words weigh on both sides of the
scope decision. The held-out set is never used (it measures generalisation), nor should a blind set be
before it was measured once.

The engine answers from an index built for the run without the answered questions (in a temporary
folder, a few seconds), so the labels never feed on an earlier file: the same KB and sets give the same
file. Prints a JSON summary; writes the file atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = ROOT / "datasets" / "eval"
OUT = ROOT / "datasets" / "answered" / "questions.jsonl"
NEVER = ("chat_holdout.jsonl", "chat_negatives.jsonl")  # held out, and out-of-scope calibration questions


@dataclass
class AnsweredConfig:
    """What `python -m training.answered` labels and where it writes."""

    sets: list[Path] = field(default_factory=lambda: sorted(p for p in EVAL_DIR.glob("chat_*.jsonl") if p.name not in NEVER))
    out: Path = OUT
    depth: int = 3  # retrieval hits looked at when the engine's own entry lacks the facts


def label(engine, entries: dict, item: dict, depth: int) -> str | None:
    """The id of the entry (of `entries`, the index's by id) whose answer holds the item's expected facts, or
    None (see the module doc)."""
    from rag.evaluation import facts_found

    facts = item.get("expected_facts") or []
    if item.get("out_of_scope") or item.get("expect_escalation") or not facts:
        return None
    answer = engine.answer(item["question"])
    if sum(s.used for s in answer.sources) > 1:
        return None
    top = entries.get(answer.top_entry or "")
    if top is not None and facts_found(top.answer, facts):
        return top.id
    hits = engine.retriever.search(item["question"], k=depth).hits
    return next((h.entry.id for h in hits if facts_found(h.entry.answer, facts)), None)


def build(config: AnsweredConfig) -> tuple[list[dict], dict]:
    """The labelled rows, in set order, and per-set counts."""
    from rag.answer import AnswerEngine
    from rag.index import build_index
    from settings import get_settings

    for path in config.sets:
        if path.name in NEVER:
            raise ValueError(f"{path.name} is never used to label questions (held out or calibration only)")
    with tempfile.TemporaryDirectory(prefix="mobilia-answered-") as index_dir:
        rag = get_settings().rag.model_copy(update={"answered_questions": None, "index_dir": Path(index_dir)})
        build_index(rag)
        engine = AnswerEngine(rag)
        engine.warm_up()
        return _label_sets(engine, config)


def _label_sets(engine, config: AnsweredConfig) -> tuple[list[dict], dict]:
    """Label every set's questions with `engine`, first occurrence of a question only."""
    from rag.evaluation import load_eval_set

    rows, counts, seen = [], {}, set()
    entries = {e.id: e for e in engine.retriever.index.entries}
    for path in config.sets:
        items = load_eval_set(path)
        kept = 0
        for item in items:
            question = item["question"].strip()
            if question.casefold() in seen:
                continue
            if item.get("out_of_scope"):
                rows.append({"question": question, "out_of_scope": True, "set": path.name})
            elif (entry_id := label(engine, entries, item, config.depth)) is not None:
                rows.append({"question": question, "entry": entry_id, "set": path.name})
            else:
                continue
            seen.add(question.casefold())
            kept += 1
        counts[path.name] = {"questions": len(items), "labelled": kept}
    return rows, counts


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m training.answered`."""
    defaults = AnsweredConfig()
    parser = argparse.ArgumentParser(prog="python -m training.answered", description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=Path, nargs="+", default=defaults.sets,
                        help="evaluation sets to label (default: datasets/eval/chat_*.jsonl but the held-out set)")
    parser.add_argument("--out", type=Path, default=defaults.out, help="JSONL file to write")
    parser.add_argument("--depth", type=int, default=defaults.depth, help="retrieval hits looked at (default 3)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Label, write, print the counts as JSON."""
    from logsetup import configure_cli_logging

    configure_cli_logging()
    args = make_parser().parse_args(argv)
    config = AnsweredConfig(sets=list(args.sets), out=args.out, depth=args.depth)
    try:
        rows, counts = build(config)
    except (OSError, ValueError) as exc:
        print(f"python -m training.answered: {exc}", file=sys.stderr)
        return 2
    from training.data import write_jsonl

    config.out.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(config.out, rows)
    print(json.dumps({"out": str(config.out), "labelled": len(rows), "sets": counts}, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
