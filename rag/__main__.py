"""Command line for the knowledge base.

    python -m rag ingest [--rebuild]
    python -m rag ask "Comment télécharger ma facture ?" [--json]   # warns when the index is older than the KB
    python -m rag ask --batch questions.jsonl      # one JSON answer per input line
    python -m rag ask "Comment payer ma facture ?" --json --mode hybrid --timeout 2
    python -m rag kb import [--from datasets/raw]   # replace the KB in the database (DATABASE_URL) and publish it
    python -m rag kb export --out kb-backup/ [--working]
    python -m rag gaps [--since 2026-11-01] [--json]  # questions the assistant handled badly, grouped
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from logsetup import configure_cli_logging

BATCH_FIELDS = ("question", "answer", "sources", "intent", "confidence", "needs_escalation", "links", "latency_ms")


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m rag`."""
    parser = argparse.ArgumentParser(prog="python -m rag", description="MobiliaChat knowledge base tools")
    sub = parser.add_subparsers(dest="command", required=True)
    ingest = sub.add_parser("ingest", help="build the FAISS + BM25 index from the KB folder")
    ingest.add_argument("--rebuild", action="store_true", help="rebuild even when the KB did not change")
    ingest.add_argument("--kb-dir", type=Path, help="knowledge-base folder (default: settings)")
    ingest.add_argument("--index-dir", type=Path, help="index folder (default: settings)")
    ask = sub.add_parser("ask", help="answer a question (or a JSONL batch) from the index")
    ask.add_argument("question", nargs="?", help="the customer question, in French")
    ask.add_argument("--json", action="store_true", help="print the full answer as JSON")
    ask.add_argument("--batch", type=Path, help='JSONL file of {"question": ...} lines')
    ask.add_argument("--index-dir", type=Path, help="index folder (default: settings)")
    ask.add_argument("--kb-dir", type=Path, help="knowledge-base folder the index should match (default: settings)")
    ask.add_argument("--mode", choices=("extractive", "generative", "hybrid"), help="answer mode (default: settings)")
    ask.add_argument("--timeout", type=float, help="hybrid mode: seconds the model has to start answering")
    kb = sub.add_parser("kb", help="the knowledge base kept in the database (DATABASE_URL)")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    kb_import = kb_sub.add_parser("import", help="replace the KB by a folder of JSON/Markdown/CSV/PDF files and publish it")
    kb_import.add_argument("--from", dest="source", type=Path, help="folder to import (default: the shipped seed)")
    kb_export = kb_sub.add_parser("export", help="write the published KB as the seed's files")
    kb_export.add_argument("--out", type=Path, required=True, help="folder to write")
    kb_export.add_argument("--working", action="store_true", help="export the working copy (drafts) instead")
    gaps = sub.add_parser("gaps", help="customer questions answered with low confidence, out of scope, 👎 or escalated")
    gaps.add_argument("--since", help="only questions since this date (YYYY-MM-DD)")
    gaps.add_argument("--json", action="store_true", help="print the groups as JSON")
    return parser


def _kb_command(args, config) -> int:
    from rag.kb import KbError, KnowledgeBase
    from rag.sources import SourceError
    from settings import get_settings
    from storage import Database

    db = Database(get_settings().database_url)
    db.migrate()
    kb = KnowledgeBase(db, config)
    try:
        if args.kb_command == "import":
            count = kb.import_dir(args.source or config.kb_dir, author="cli")
            print(f"{count} entries imported and published into {db.url}")
        else:
            written = kb.export_dir(args.out, working=args.working)
            print(f"{len(written)} files written under {args.out}")
    except (KbError, SourceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _gaps_command(args, config) -> int:
    from datetime import UTC, datetime

    from rag.gaps import GapFinder, format_text, report
    from settings import get_settings
    from storage import Database

    try:
        since = datetime.fromisoformat(args.since).replace(tzinfo=UTC) if args.since else None
    except ValueError:
        print("error: --since expects a date such as 2026-11-01", file=sys.stderr)
        return 2
    db = Database(get_settings().database_url)
    db.migrate()
    groups = GapFinder(db, min_confidence=config.min_confidence).groups(since)
    print(json.dumps(report(groups), ensure_ascii=False, indent=2) if args.json else format_text(groups))
    return 0


def _config(args):
    from settings import get_settings

    config = get_settings().rag
    updates = {k: v for k, v in (("kb_dir", getattr(args, "kb_dir", None)), ("index_dir", getattr(args, "index_dir", None)),
                                 ("answer_mode", getattr(args, "mode", None))) if v}
    config = config.model_copy(update=updates)
    if getattr(args, "timeout", None) is not None:
        config = config.model_copy(update={"llm": config.llm.model_copy(update={"timeout": args.timeout})})
    return config


def _stale_index(config) -> str | None:
    """A warning when the index was built from another KB than the folder's (edited files, new analyzer or model).

    `ask` answers from the index as it is and never rebuilds it: the app may have built it from the KB
    published in its database, which a rebuild from the files would replace."""
    from rag.index import current_build, fingerprint
    from rag.sources import SourceError

    active = current_build(config.index_dir)
    if active is None:  # no index yet: the first answer builds it from the folder
        return None
    try:
        built = json.loads((active / "manifest.json").read_text(encoding="utf-8")).get("fingerprint")
        wanted = fingerprint(config)
    except (OSError, ValueError, SourceError):
        return None
    if built == wanted:
        return None
    return (f"warning: the index in {config.index_dir} was not built from the knowledge base in {config.kb_dir} as it "
            f"is now (files edited, or a new analyzer or model); run `python -m rag ingest` to rebuild it")


def _answer_record(question: str, answer) -> dict:
    data = answer.to_dict()
    data["answer"] = data.pop("text")
    data["question"] = question
    return {**{k: data[k] for k in BATCH_FIELDS}, **{k: v for k, v in data.items() if k not in BATCH_FIELDS}}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = make_parser().parse_args(argv)
    configure_cli_logging("WARNING")
    config = _config(args)
    if args.command == "kb":
        return _kb_command(args, config)
    if args.command == "gaps":
        return _gaps_command(args, config)
    from rag.answer import AnswerEngine
    from rag.index import build_index
    from rag.sources import SourceError

    if args.command == "ingest":
        try:
            report = build_index(config, rebuild=args.rebuild, show_progress=True)
        except SourceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        state = "built" if report.rebuilt else "up to date"
        print(f"Index {report.build} {state}: {report.entries} entries, {report.views} passages, "
              f"{report.seconds:.1f}s -> {report.path}")
        return 0

    if bool(args.question) == bool(args.batch):
        print("error: give either a question or --batch FILE", file=sys.stderr)
        return 2
    if (warning := _stale_index(config)) is not None:
        print(warning, file=sys.stderr)
    engine = AnswerEngine(config)
    if config.answer_mode != "extractive" and not engine.llm.wait():  # loading is not part of an answer's time
        print(f"warning: generative model unavailable ({engine.llm.error}); answering extractively", file=sys.stderr)
    if args.batch:
        try:
            lines = args.batch.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            print(f"error: cannot read {args.batch}: {exc.strerror}", file=sys.stderr)
            return 2
        bad = 0
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                question = json.loads(line)["question"]
                if not isinstance(question, str) or not question.strip():
                    raise ValueError
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                print(f"error: line {n} skipped: not a JSON object with a non-empty 'question'", file=sys.stderr)
                bad += 1
                continue
            print(json.dumps(_answer_record(question, engine.answer(question)), ensure_ascii=False), flush=True)
        engine.llm.close()
        return 1 if bad else 0
    answer = engine.answer(args.question)
    engine.llm.close()  # let an abandoned generation (hybrid timeout) stop before the interpreter exits
    if args.json:
        print(json.dumps(_answer_record(args.question, answer), ensure_ascii=False, indent=2))
    else:
        print(answer.text)
        for s in answer.sources:
            print(f"  [source] {s.id} — {s.title} ({s.score:.2f})")
        if answer.needs_escalation:
            print(f"  [escalade] {', '.join(answer.escalation_reasons)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
