"""Build chat-format fine-tuning datasets from the KB and resolved tickets, PII-redacted.

    python -m training.data build --config configs/data/default.yaml [--db sqlite:///data/mobiliachat.db]
    python -m training.data build --published   # the database's published KB + approved reviews


Every example is ``{"messages": [system, user, assistant], "source", "category", "kind"}``. Each
source entry (a FAQ entry, a procedure section, a past conversation, a ticket) is a *group*: all
its phrasings go to the same split, so validation never sees a paraphrase of a training
question. Texts are redacted (phones, e-mails, IBANs, names) before deduplication, writing or
logging. Negative-feedback answers and escalated conversations go to ``review_candidates.jsonl``
(and to the review queue of the datasets tab, ``training/review.py``), never into train/validation
unless a reviewer approved a reference answer (``--published`` and the datasets tab add those).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from logsetup import configure_cli_logging
from training.config import ConfigError, DataBuildConfig, add_config_arguments, load_config, overrides_from_args
from training.config import resolve_path as _resolve

log = logging.getLogger(__name__)

TRAIN_FILE, VALIDATION_FILE, STATS_FILE, REVIEW_FILE = (
    "train.jsonl", "validation.jsonl", "stats.json", "review_candidates.jsonl",
)  # fmt: skip


@dataclass
class Group:
    """One source entry and the (question, answer) pairs it yields; the unit of the split."""

    id: str
    category: str
    kind: str
    pairs: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class BuildReport:
    """What `build()` wrote."""

    out_dir: Path
    stats: dict


def normalize(text: str) -> str:
    """Dedup key: lower case, no accents, punctuation or extra spaces."""
    from rag.text import fold

    return " ".join(re.sub(r"[^\w]+", " ", fold(text)).split())


def variations(question: str, n: int) -> list[str]:
    """Up to n deterministic extra phrasings of a customer question (greeting, politeness, casual)."""
    q = question.strip()
    low = q[0].lower() + q[1:] if q else q
    bare = q.rstrip(" ?!.")
    candidates = [
        f"Bonjour, {low}",
        f"{bare}, s'il vous plaît ?",
        f"Bonsoir, j'aurais une question : {low}",
        f"{bare.lower()} svp",
        f"Salut ! {low} Merci d'avance.",
    ]
    return candidates[:n]


def _cut(text: str, limit: int) -> str:
    """Cut a long answer at the last sentence end before `limit` characters."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    end = max(head.rfind(". "), head.rfind(".\n"), head.rfind("\n\n"))
    return (head[: end + 1] if end > limit // 3 else head).strip()


def kb_groups(config: DataBuildConfig, entries: list | None = None) -> list[Group]:
    """Groups from the KB: FAQ entries, procedure sections and past conversations.

    ``entries`` (``rag.sources.Entry``, e.g. the published KB of the database) replace the files of
    ``sources.kb_dir``.
    """
    from rag.sources import load_kb

    src = config.sources
    wanted = {"faq": src.include_faq, "procedure": src.include_procedures, "conversation": src.include_conversations}
    groups = []
    for entry in entries if entries is not None else load_kb(_resolve(src.kb_dir)):
        if not wanted.get(entry.kind, False):
            continue
        questions = list(entry.questions)
        if entry.kind == "procedure":
            section = entry.title.split(" — ")[-1]
            questions += [f"Quelle est la procédure pour : {section.lower()} ?", entry.title]
        groups.append(Group(entry.id, entry.category, entry.kind, [(q, entry.answer) for q in questions]))
    return groups


def _ticket_conversations(db_url: str):
    """(ticket, known names, messages) of conversations that have a ticket.

    The names are the customer's and the one the conversation's contact form was filled with.
    """
    from sqlalchemy import select

    from storage import Conversation, Customer, Database, Message, Ticket

    database = Database(db_url)
    try:
        with database.session() as session:
            tickets = session.scalars(select(Ticket).where(Ticket.conversation_id.is_not(None)).order_by(Ticket.id))
            for ticket in tickets:
                customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
                conversation = session.get(Conversation, ticket.conversation_id)
                messages = list(
                    session.scalars(
                        select(Message).where(Message.conversation_id == ticket.conversation_id).order_by(Message.id)
                    )
                )
                yield ticket, _known_names(customer, conversation), messages
    finally:
        database.dispose()


def _known_names(customer, conversation) -> list[str]:
    """Names to mask in a conversation's texts: its customer's and its contact form's."""
    names = [customer.full_name if customer else None, conversation.contact_name if conversation else None]
    return [n for n in names if n]


def _negative_feedback(db_url: str):
    """(known names, question, bot answer, comment) of each thumbs-down answer."""
    from sqlalchemy import select

    from storage import Conversation, Customer, Database, Feedback, Message

    database = Database(db_url)
    try:
        with database.session() as session:
            for fb in session.scalars(select(Feedback).where(Feedback.rating == -1).order_by(Feedback.id)):
                answer = session.get(Message, fb.message_id)
                conversation = session.get(Conversation, fb.conversation_id)
                customer = session.get(Customer, conversation.customer_id) if conversation.customer_id else None
                question = session.scalars(
                    select(Message.content)
                    .where(
                        Message.conversation_id == fb.conversation_id,
                        Message.role == "user",
                        Message.id < fb.message_id,
                    )
                    .order_by(Message.id.desc())
                    .limit(1)
                ).first()
                yield _known_names(customer, conversation), question or "", answer.content if answer else "", fb
    finally:
        database.dispose()


def db_groups_and_candidates(db_url: str, redact) -> tuple[list[Group], list[dict]]:
    """Resolved tickets -> groups (customer question -> agent answer); escalations and thumbs-down -> candidates."""
    groups, candidates = [], []
    for ticket, names, messages in _ticket_conversations(db_url):
        clean = [(m.role, redact(m.content, names)) for m in messages]
        resolved = ticket.status in ("RESOLVED", "CLOSED")
        pairs, pending = [], []
        for role, text in clean:
            if role == "user":
                pending.append(text)
            elif role == "agent" and pending:
                pairs.append((" ".join(pending), text))
                pending = []
        if resolved and pairs:
            groups.append(Group(f"ticket-{ticket.id}", ticket.category, "ticket", pairs))
        candidates.append({
            "reason": "escalation",
            "ticket_id": ticket.id,
            "ticket_status": ticket.status,
            "category": ticket.category,
            "summary": redact(ticket.summary, names),
            "resolution_notes": redact(ticket.resolution_notes, names),
            "messages": [{"role": r, "content": t} for r, t in clean],
        })  # fmt: skip
    for names, question, answer, fb in _negative_feedback(db_url):
        candidates.append({
            "reason": "negative_feedback",
            "feedback_id": fb.id,
            "question": redact(question, names),
            "answer": redact(answer, names),
            "comment": redact(fb.comment, names),
        })  # fmt: skip
    return groups, candidates


def to_examples(group: Group, config: DataBuildConfig, redact) -> list[dict]:
    """Chat-format examples of a group: each question (+ variations) -> the answer, redacted."""
    proc = config.processing
    examples = []
    for question, answer in group.pairs:
        question, answer = redact(question.strip()), redact(_cut(answer.strip(), proc.max_answer_chars))
        if len(question) < proc.min_question_chars or not answer:
            continue
        for q in [question, *variations(question, proc.variations)]:
            examples.append({
                "messages": [
                    {"role": "system", "content": proc.system_prompt},
                    {"role": "user", "content": q},
                    {"role": "assistant", "content": answer},
                ],
                "source": group.id,
                "category": group.category,
                "kind": group.kind,
            })  # fmt: skip
    return examples


def split_groups(groups: list[Group], ratio: float, seed: int) -> tuple[set[str], set[str]]:
    """Deterministic split of group ids, per category (each category with 2+ groups gets validation)."""
    by_category: dict[str, list[str]] = defaultdict(list)
    for g in groups:
        by_category[g.category].append(g.id)
    train, validation = set(), set()
    for category in sorted(by_category):
        ids = sorted(set(by_category[category]))
        random.Random(f"{seed}:{category}").shuffle(ids)
        n_val = round(len(ids) * ratio) if len(ids) > 1 else 0
        if len(ids) > 1 and n_val == 0:
            n_val = 1
        validation.update(ids[:n_val])
        train.update(ids[n_val:])
    return train, validation


def _key(example: dict) -> str:
    return normalize(example["messages"][1]["content"]) + "\x00" + normalize(example["messages"][2]["content"])


SOURCE_OF_KIND = {"faq": "kb", "procedure": "kb", "conversation": "kb", "pdf": "kb", "ticket": "tickets",
                  "review": "review"}  # fmt: skip
PLACEHOLDERS = {"[email]": "email", "[téléphone]": "phone", "[iban]": "iban", "[compte]": "handle", "[nom]": "name"}


class CountingRedactor:
    """``tickets.redact.redact`` that counts what it masked, by kind (the build's redaction report)."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.texts = 0  # texts that had something masked

    def __call__(self, text: str | None, names=()) -> str:
        from tickets.redact import redact

        clean = redact(text, names)
        found = Counter({kind: clean.count(mark) - (text or "").count(mark) for mark, kind in PLACEHOLDERS.items()})
        found = +found  # keep positive counts
        if found:
            self.counts.update(found)
            self.texts += 1
        return clean

    def report(self) -> dict:
        """{"texts": n, "by_kind": {kind: n}}."""
        return {"texts": self.texts, "by_kind": dict(sorted(self.counts.items()))}


def build(config: DataBuildConfig, db_url: str | None = None, *, entries: list | None = None,
          extra_groups: list[Group] | None = None, progress=None) -> BuildReport:  # fmt: skip
    """Build train/validation/stats/review files in config.output.out_dir.

    ``entries`` replace the KB files (the datasets tab passes the published KB), ``extra_groups``
    are added after the KB and tickets (approved reviews), ``progress(fraction, text)`` is told
    how far the build is.
    """
    redact = CountingRedactor()
    step = progress or (lambda _fraction, _text: None)
    start = time.perf_counter()
    step(0.05, "Lecture de la base de connaissances")
    groups = kb_groups(config, entries)
    candidates: list[dict] = []
    db_url = db_url or config.sources.db_url
    if config.sources.include_tickets:
        if db_url is None:
            from settings import get_settings

            db_url = get_settings().database_url
        from sqlalchemy.exc import OperationalError, ProgrammingError

        try:
            ticket_groups, candidates = db_groups_and_candidates(db_url, redact)
            groups += ticket_groups
        except (OperationalError, ProgrammingError) as exc:  # no such table: a DB never migrated
            log.warning("tickets skipped, database not readable: %s", type(exc).__name__)
    groups += extra_groups or []
    step(0.3, "Découpage entraînement / validation")
    train_ids, val_ids = split_groups(groups, config.split.validation_ratio, config.split.seed)

    seen: set[str] = set()
    splits: dict[str, list[dict]] = {"train": [], "validation": []}
    duplicates = 0
    for n, group in enumerate(groups):  # KB order, then tickets: the first occurrence of a duplicate wins
        if n % 50 == 0:
            step(0.3 + 0.5 * n / max(1, len(groups)), "Exemples et anonymisation")
        side = "validation" if group.id in val_ids else "train"
        for ex in to_examples(group, config, redact):
            key = _key(ex)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            splits[side].append(ex)
    # Same question in both splits (different entries with the same wording): drop it from validation.
    train_questions = {normalize(ex["messages"][1]["content"]) for ex in splits["train"]}
    before = len(splits["validation"])
    splits["validation"] = [
        ex for ex in splits["validation"] if normalize(ex["messages"][1]["content"]) not in train_questions
    ]
    overlap = before - len(splits["validation"])

    step(0.85, "Écriture des fichiers")
    out = _resolve(config.output.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (
        (TRAIN_FILE, splits["train"]),
        (VALIDATION_FILE, splits["validation"]),
        (REVIEW_FILE, candidates),
    ):
        write_jsonl(out / name, rows)
    stats = {
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seed": config.split.seed,
        "validation_ratio": config.split.validation_ratio,
        "groups": {"train": len(train_ids), "validation": len(val_ids)},
        "examples": {k: len(v) for k, v in splits.items()},
        "duplicates_removed": duplicates,
        "cross_split_questions_removed": overlap,
        "review_candidates": dict(Counter(c["reason"] for c in candidates)),
        "per_category": {
            split: dict(sorted(Counter(ex["category"] for ex in rows).items())) for split, rows in splits.items()
        },
        "per_kind": {split: dict(sorted(Counter(ex["kind"] for ex in rows).items())) for split, rows in splits.items()},
        "per_source": {split: dict(sorted(Counter(SOURCE_OF_KIND.get(e["kind"], e["kind"]) for e in rows).items()))
                       for split, rows in splits.items()},
        "redaction": redact.report(),
        "seconds": round(time.perf_counter() - start, 2),
    }
    (out / STATS_FILE).write_text(json.dumps(stats, ensure_ascii=False, indent=2), encoding="utf-8")
    log.info("dataset written to %s: %s", out, stats["examples"])
    return BuildReport(out, stats)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """One JSON object per line, UTF-8 (written to a temp file, then renamed)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.data", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="Build train/validation JSONL, stats and review candidates.")
    add_config_arguments(build_cmd, DataBuildConfig)
    build_cmd.add_argument("--db", help="Database URL of the tickets (default: sources.db_url, then the settings).")
    build_cmd.add_argument("--published", action="store_true",
                           help="Use the database's published KB (not sources.kb_dir) and its approved reviews.")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    configure_cli_logging("INFO")
    try:
        config = load_config(DataBuildConfig, args.config, overrides_from_args(args))
        if args.published:
            from training.review import build_published

            report = build_published(config, args.db)
        else:
            report = build(config, db_url=args.db)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(report.stats, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
