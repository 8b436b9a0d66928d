"""The review queue: 👎 answers, escalated conversations and knowledge-gap questions, corrected by a reviewer.

A candidate is shown redacted (phones, e-mails, IBANs, handles, the customer's known names) with
what the customer asked, what the bot said and the context (the customer's comment, or the
agent's replies and resolution notes). A reviewer (trainer, admin) writes or corrects the
reference answer and approves it for the training set, the KB (a draft, through
``rag.kb.KnowledgeBase``: a new phrasing of an entry, or a new entry) or both; or rejects it.
Everything is redacted again right before it is stored (the reviewer may have pasted a number).
Approved training items become groups of ``training.data.build`` (``review_groups``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select

from storage import Conversation, Customer, Database, Feedback, Message, Ticket
from storage.reviews import ReviewRepository
from tickets.redact import redact

REVIEWER_ROLES = ("trainer", "admin")
DESTINATIONS = ("training", "kb", "both")
SOURCE_LABELS = {"thumbs_down": "👎 réponse", "escalation": "escalade résolue", "gap": "lacune"}
DESTINATION_LABELS = {"training": "jeu d'entraînement", "kb": "base de connaissances", "both": "les deux"}
MAX_CANDIDATES = 200


class ReviewError(ValueError):
    """A review that cannot be saved (French message for the UI)."""


@dataclass
class Candidate:
    """One item of the queue, already redacted."""

    key: str  # feedback:<id>, ticket:<id>, gap:<message id>
    source: str  # thumbs_down, escalation, gap
    category: str
    question: str
    bot_answer: str
    context: str  # the customer's comment, or the agent's replies and resolution notes
    suggestion: str  # a starting point for the reference answer (the agent's reply for escalations)
    at: datetime
    top_entry: str | None = None

    def to_dict(self) -> dict:
        """Plain dict (for gr.State and JSON)."""
        return {**asdict(self), "at": self.at.isoformat(timespec="minutes")}


def _names(session, conversation_id: str | None) -> list[str]:
    """Known names of a conversation's customer (customer record and contact form)."""
    conversation = session.get(Conversation, conversation_id) if conversation_id else None
    if conversation is None:
        return []
    customer = session.get(Customer, conversation.customer_id) if conversation.customer_id else None
    return [n for n in (customer.full_name if customer else None, conversation.contact_name) if n]


def _question_before(session, conversation_id: str, message_id: int) -> str:
    """The customer's last message before a given message."""
    query = (select(Message.content).where(Message.conversation_id == conversation_id, Message.role == "user",
                                           Message.id < message_id).order_by(Message.id.desc()).limit(1))  # fmt: skip
    return session.scalars(query).first() or ""


class ReviewQueue:
    """Pending candidates from the database, and the reviewers' decisions (``ReviewRepository``)."""

    def __init__(self, db: Database, kb=None, min_confidence: float = 0.45) -> None:
        self.db = db
        self.kb = kb  # rag.kb.KnowledgeBase, for approvals that go to the KB
        self.repo = ReviewRepository(db)
        self.min_confidence = min_confidence

    # --- the queue ------------------------------------------------------------------------------
    def candidates(self, limit: int = MAX_CANDIDATES) -> list[Candidate]:
        """Candidates not reviewed yet, newest first: 👎 answers, resolved escalations, gap questions."""
        decided = self.repo.decided_keys()
        found = [*self._thumbs_down(), *self._escalations(), *self._gaps()]
        pending = [c for c in found if c.key not in decided]
        return sorted(pending, key=lambda c: c.at, reverse=True)[:limit]

    def _thumbs_down(self) -> list[Candidate]:
        out = []
        with self.db.read() as session:
            for fb in session.scalars(select(Feedback).where(Feedback.rating == -1).order_by(Feedback.id)):
                answer = session.get(Message, fb.message_id)
                if answer is None:
                    continue
                names = _names(session, fb.conversation_id)
                meta = answer.meta or {}
                out.append(Candidate(
                    f"feedback:{fb.id}", "thumbs_down", meta.get("intent") or "général",
                    redact(_question_before(session, fb.conversation_id, fb.message_id), names),
                    redact(answer.content, names), f"Commentaire du client : {redact(fb.comment, names)}" if fb.comment
                    else "Pas de commentaire.", "", fb.created_at, meta.get("top_entry"),
                ))  # fmt: skip
        return out

    def _escalations(self) -> list[Candidate]:
        out = []
        with self.db.read() as session:
            query = select(Ticket).where(Ticket.conversation_id.is_not(None), Ticket.status.in_(("RESOLVED", "CLOSED")))
            for ticket in session.scalars(query.order_by(Ticket.id)):
                messages = list(session.scalars(select(Message).where(Message.conversation_id == ticket.conversation_id)
                                                .order_by(Message.id)))  # fmt: skip
                agent = [m for m in messages if m.role == "agent"]
                if not agent:
                    continue
                names = _names(session, ticket.conversation_id)
                asked = [m.content for m in messages if m.role == "user" and m.id < agent[0].id]
                bot = [m.content for m in messages if m.role == "assistant" and m.id < agent[0].id]
                replies = "\n".join(redact(m.content, names) for m in agent)
                notes = redact(ticket.resolution_notes, names)
                context = replies + (f"\n\nNotes de résolution : {notes}" if notes else "")
                out.append(Candidate(
                    f"ticket:{ticket.id}", "escalation", ticket.category, redact(" ".join(asked[-2:]), names),
                    redact(bot[-1] if bot else "", names), context, replies, ticket.resolved_at or ticket.updated_at,
                ))  # fmt: skip
        return out

    def _gaps(self) -> list[Candidate]:
        from rag.gaps import REASON_LABELS, GapFinder

        out = []
        items = [i for i in GapFinder(self.db, self.min_confidence).items() if "thumbs_down" not in i.reasons]
        with self.db.read() as session:
            for item in items:
                names = _names(session, item.conversation_id)
                answer = session.get(Message, item.message_id)
                reasons = ", ".join(REASON_LABELS.get(r, r) for r in item.reasons)
                out.append(Candidate(
                    f"gap:{item.message_id}", "gap", (answer.meta or {}).get("intent") or "général",
                    redact(item.question, names), redact(answer.content if answer else "", names),
                    f"Lacune : {reasons} (confiance {item.confidence:.2f})", "", item.at, item.top_entry,
                ))  # fmt: skip
        return out

    def candidate(self, key: str) -> Candidate:
        """One pending candidate by its key (ReviewError when unknown or already reviewed)."""
        for found in self.candidates(limit=10_000):
            if found.key == key:
                return found
        raise ReviewError("Cet élément n'est plus dans la file (déjà revu ?).")

    # --- decisions ------------------------------------------------------------------------------
    def approve(self, key: str, reference: str, destination: str, *, reviewer: str, role: str,
                question: str | None = None, entry_id: str = "", category: str = "") -> str:  # fmt: skip
        """Store a corrected reference answer for the training set, the KB (a draft) or both; returns a French note.

        ``question`` lets the reviewer reword the customer's question; ``entry_id`` sends the question
        to an existing KB entry as a new phrasing (else a new draft entry is created with the answer).
        """
        self._reviewer(role)
        if destination not in DESTINATIONS:
            raise ReviewError("Choisissez une destination : jeu d'entraînement, base de connaissances ou les deux.")
        item = self.candidate(key)
        names = self._known_names(item)
        text = redact((question or item.question).strip(), names)
        answer = redact((reference or "").strip(), names)
        if not text:
            raise ReviewError("La question est vide.")
        if not answer and not (destination == "kb" and entry_id.strip()):
            raise ReviewError("Écrivez la réponse de référence avant d'approuver.")
        category = (category or item.category or "général").strip()
        target = None
        if destination in ("kb", "both"):
            target = self._to_kb(text, answer, entry_id.strip(), category, reviewer=reviewer, role=role)
        self.repo.save(key, source=item.source, category=category, question=text, bot_answer=item.bot_answer,
                       details=item.context, reference_answer=answer, status="approved", destination=destination,
                       entry_id=target, reviewer=reviewer)  # fmt: skip
        where = DESTINATION_LABELS[destination]
        return f"Approuvé pour : {where}" + (f" (brouillon {target})" if target else "") + "."

    def reject(self, key: str, *, reviewer: str, role: str) -> None:
        """Take a candidate out of the queue without using it."""
        self._reviewer(role)
        item = self.candidate(key)
        self.repo.save(key, source=item.source, category=item.category or "général", question=item.question,
                       bot_answer=item.bot_answer, details=item.context, reference_answer=None, status="rejected",
                       destination=None, entry_id=None, reviewer=reviewer)  # fmt: skip

    def _to_kb(self, question: str, answer: str, entry_id: str, category: str, *, reviewer: str, role: str) -> str:
        """Add the question to an entry, or draft a new entry; returns the entry id (KbError -> ReviewError)."""
        from rag.kb import KbError

        if self.kb is None:
            raise ReviewError("La base de connaissances n'est pas disponible.")
        try:
            if entry_id:
                self.kb.add_phrasing(entry_id, question, author=reviewer, role=role)
                return entry_id
            before = {e.id for e in self.kb.working_entries()}
            self.kb.save_entry({"questions": [question], "answer": answer, "category": category}, author=reviewer,
                               role=role, note="depuis la file de revue")  # fmt: skip
            return next(e.id for e in self.kb.working_entries() if e.id not in before)
        except KbError as exc:
            raise ReviewError(str(exc)) from exc

    def _known_names(self, item: Candidate) -> list[str]:
        """Known customer names of a candidate's conversation (to redact what the reviewer typed)."""
        kind, _, ref = item.key.partition(":")
        with self.db.read() as session:
            if kind == "feedback":
                fb = session.get(Feedback, int(ref))
                return _names(session, fb.conversation_id if fb else None)
            if kind == "ticket":
                ticket = session.get(Ticket, int(ref))
                return _names(session, ticket.conversation_id if ticket else None)
            message = session.get(Message, int(ref))
            return _names(session, message.conversation_id if message else None)

    @staticmethod
    def _reviewer(role: str) -> None:
        if role not in REVIEWER_ROLES:
            raise ReviewError("Réservé aux formateurs et administrateurs.")

    # --- what the dataset build uses ----------------------------------------------------------------
    def approved(self) -> list:
        """Approved decisions, newest first."""
        return self.repo.list(status="approved")

    def review_groups(self) -> list:
        """Approved items for the training set as ``training.data.Group`` (one group per item)."""
        from training.data import Group

        return [Group(f"review-{r.id}", r.category, "review", [(r.question, r.reference_answer or "")])
                for r in self.repo.list(status="approved", destinations=("training", "both"))
                if r.reference_answer]  # fmt: skip


def build_published(config, db_url: str | None = None, *, db: Database | None = None, kb=None, progress=None):
    """``training.data.build`` on the published KB of the database plus its approved reviews.

    The datasets tab passes its services' ``db`` and ``kb``; the CLI (``--published``) a URL (default:
    ``sources.db_url``, then the settings). Resolved tickets come from the same database.
    """
    from rag.kb import KnowledgeBase
    from settings import get_settings
    from training.data import build

    db_url = db_url or config.sources.db_url or get_settings().database_url
    own = db is None
    database = db if db is not None else Database(db_url)
    try:
        base = kb or KnowledgeBase(database, get_settings().rag)
        entries = base.published_entries() or None  # None: nothing published yet, the seed files
        groups = ReviewQueue(database).review_groups()
        return build(config, db_url=db_url, entries=entries, extra_groups=groups, progress=progress)
    finally:
        if own:
            database.dispose()
