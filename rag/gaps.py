"""Knowledge gaps: customer questions the assistant handled badly, grouped by similarity.

A gap is a customer message whose answer had a low retrieval confidence, was the out-of-scope
answer, got a 👎, or was escalated because nothing sure was found. Similar questions are grouped
(lexical overlap of their analyzed tokens, or embedding cosine when an embedder is given) so a
trainer sees "12 customers asked this" with the dates, examples and the entry the bot chose.
Dismissed questions are remembered in ``app_state`` (``kb_gaps_dismissed``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from rag.text import analyze
from storage import AppStateRepository, Feedback, Message

LOW_CONFIDENCE_REASON = "confiance de recherche insuffisante"
DISMISSED_KEY = "kb_gaps_dismissed"
REASON_LABELS = {"low_confidence": "confiance faible", "out_of_scope": "hors sujet", "thumbs_down": "👎",
                 "escalated": "escaladé (rien de sûr trouvé)"}  # fmt: skip


@dataclass
class GapItem:
    """One customer question and why it is a gap."""

    message_id: int  # the assistant's answer
    conversation_id: str
    question: str
    at: datetime
    reasons: list[str]
    top_entry: str | None
    confidence: float
    comment: str | None = None


@dataclass
class GapGroup:
    """Similar gap questions."""

    question: str  # the most frequent wording
    items: list[GapItem] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Number of questions."""
        return len(self.items)

    def to_dict(self) -> dict:
        """JSON-friendly summary (the CLI's --json and the UI table)."""
        dates = [i.at for i in self.items]
        return {
            "question": self.question,
            "count": self.count,
            "first": min(dates).isoformat(timespec="minutes"),
            "last": max(dates).isoformat(timespec="minutes"),
            "reasons": dict(Counter(r for i in self.items for r in i.reasons)),
            "entries": dict(Counter(i.top_entry or "—" for i in self.items)),
            "examples": [i.question for i in self.items[:5]],
            "comments": [i.comment for i in self.items if i.comment][:5],
            "message_ids": [i.message_id for i in self.items],
        }


def gap_reasons(meta: dict, rating: int | None, min_confidence: float) -> list[str]:
    """Why an answer is a gap ([] when it is not)."""
    reasons = []
    if meta.get("out_of_scope"):
        reasons.append("out_of_scope")
    elif meta.get("confidence", 1.0) < min_confidence:
        reasons.append("low_confidence")
    if rating == -1:
        reasons.append("thumbs_down")
    if LOW_CONFIDENCE_REASON in (meta.get("escalation_reasons") or []):
        reasons.append("escalated")
    return reasons


class GapFinder:
    """Reads messages and feedback, returns grouped gaps; dismissals are kept in app_state."""

    def __init__(self, db, min_confidence: float = 0.45, embedder=None, threshold: float = 0.5) -> None:
        self.db = db
        self.state = AppStateRepository(db)
        self.min_confidence = min_confidence
        self.embedder = embedder
        self.threshold = threshold

    def items(self, since: datetime | None = None) -> list[GapItem]:
        """Every gap question since a date (dismissed ones excluded), oldest first."""
        dismissed = set(self.state.get(DISMISSED_KEY) or [])
        with self.db.read() as session:
            query = select(Message).where(Message.role.in_(("user", "assistant"))).order_by(Message.id)
            if since is not None:
                query = query.where(Message.created_at >= since)
            messages = list(session.scalars(query))
            ratings = {f.message_id: (f.rating, f.comment) for f in session.scalars(select(Feedback))}
        last_question: dict[str, str] = {}
        found = []
        for m in messages:
            if m.role == "user":
                last_question[m.conversation_id] = m.content
                continue
            meta = m.meta or {}
            rating, comment = ratings.get(m.id, (None, None))
            reasons = gap_reasons(meta, rating, self.min_confidence)
            question = last_question.get(m.conversation_id)
            if reasons and question and m.id not in dismissed and "confidence" in meta:
                found.append(GapItem(m.id, m.conversation_id, question, m.created_at, reasons,
                                     meta.get("top_entry"), float(meta.get("confidence") or 0.0), comment))  # fmt: skip
        return found

    def groups(self, since: datetime | None = None) -> list[GapGroup]:
        """Gap questions grouped by similarity, biggest group first."""
        items = self.items(since)
        if not items:
            return []
        similar = self._similarity([i.question for i in items])
        groups: list[list[int]] = []
        for n in range(len(items)):
            for group in groups:
                if similar(group[0], n):
                    group.append(n)
                    break
            else:
                groups.append([n])
        result = []
        for members in groups:
            picked = [items[n] for n in members]
            wording = Counter(i.question for i in picked).most_common(1)[0][0]
            result.append(GapGroup(wording, sorted(picked, key=lambda i: i.at, reverse=True)))
        return sorted(result, key=lambda g: (-g.count, g.question))

    def _similarity(self, questions: list[str]):
        if self.embedder is not None:
            vectors = self.embedder.encode(questions)
            return lambda a, b: float(vectors[a] @ vectors[b]) >= max(self.threshold, 0.8)
        tokens = [set(analyze(q)) for q in questions]

        def jaccard(a: int, b: int) -> bool:
            union = tokens[a] | tokens[b]
            return bool(union) and len(tokens[a] & tokens[b]) / len(union) >= self.threshold

        return jaccard

    def dismiss(self, message_ids: list[int]) -> None:
        """Hide these questions from the gaps from now on."""
        kept = set(self.state.get(DISMISSED_KEY) or []) | set(message_ids)
        self.state.set(DISMISSED_KEY, sorted(kept)[-5000:])


def report(groups: list[GapGroup]) -> list[dict]:
    """The groups as plain dicts."""
    return [g.to_dict() for g in groups]


def format_text(groups: list[GapGroup]) -> str:
    """Human-readable report for the terminal."""
    if not groups:
        return "Aucune lacune trouvée."
    lines = []
    for g in groups:
        d = g.to_dict()
        reasons = ", ".join(f"{REASON_LABELS.get(k, k)} ×{v}" for k, v in d["reasons"].items())
        entries = ", ".join(f"{k} ×{v}" for k, v in d["entries"].items())
        lines.append(f"[{d['count']}] {d['question']}  ({d['first'][:10]} → {d['last'][:10]})")
        lines.append(f"    raisons : {reasons} ; entrée choisie : {entries}")
        lines += [f"    - {q}" for q in d["examples"][1:]]
        lines += [f"    💬 {c}" for c in d["comments"]]
    return "\n".join(lines)

