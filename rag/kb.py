"""The knowledge base kept in the database: seed import, export, editing with history, the published version.

Trainers and admins edit the working copy (``kb_entries``); agents may only propose drafts. What
the assistant serves is a published snapshot (``kb_versions``), chosen by the ``kb_published``
pointer in ``app_state``: a stack, so a rollback restores the previous publication, and a journal
of who published, rolled back or overrode the gate. The index is built from the published
snapshot; it yields exactly the entries the file loaders give for the same KB, so the
fingerprint, and the answers, are the same as with the files.
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
from pathlib import Path
from typing import Any

from rag.sources import Entry, load_kb, slugify
from settings import RagConfig
from storage.kb import ENTRY_FIELDS, KbRepository, entry_dict

log = logging.getLogger(__name__)
STATE_KEY = "kb_published"
JOURNAL_LIMIT = 200
EDITOR_ROLES = ("admin", "trainer")
PHONE_RE = re.compile(r"(?:\+33\s?|\b0)[1-9](?:[\s.-]?\d{2}){4}\b")
EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
URL_RE = re.compile(r"^https?://[\w.-]+\.[a-z]{2,}(?:[/?#]\S*)?$", re.IGNORECASE)


DIFF_LABELS = {"title": "titre", "category": "catégorie", "status": "statut", "answer": "réponse",
               "questions": "formulation", "links": "lien", "tags": "mot-clé"}  # fmt: skip
STATUS_WORDS = {"draft": "brouillon", "published": "publiée", "retired": "retirée"}


class KbError(ValueError):
    """A change that cannot be made (French message for the UI)."""


def to_entry(data: dict[str, Any]) -> Entry:
    """An Entry from a dict with its fields (extra keys ignored)."""
    return Entry(**{k: data[k] for k in ENTRY_FIELDS})


def validate(entry: Entry, others: list[Entry], before: Entry | None = None) -> list[str]:
    """Problems of an entry, in French: empty answer, phrasing used by another entry, broken link, contact data.

    Only phrasings new to the entry (not in `before`) are checked against the other entries.
    """
    problems = []
    if not entry.answer.strip():
        problems.append("La réponse est vide.")
    if not entry.title.strip():
        problems.append("Le titre est vide.")
    if entry.kind == "faq" and not [q for q in entry.questions if q.strip()]:
        problems.append("Ajoutez au moins une formulation de la question.")
    seen = {q.strip().casefold(): o.id for o in others if o.id != entry.id for q in o.questions}
    known = {q.strip().casefold() for q in (before.questions if before else [])}
    for q in entry.questions:
        if q.strip().casefold() in seen and q.strip().casefold() not in known:
            problems.append(f"La formulation « {q} » est déjà utilisée par l'entrée {seen[q.strip().casefold()]}.")
    for link in entry.links:
        if not URL_RE.match(link.strip()):
            problems.append(f"Lien invalide : « {link} » (une adresse https://… est attendue).")
    if PHONE_RE.search(entry.answer):
        problems.append("La réponse contient un numéro de téléphone : renvoyez vers le formulaire de contact.")
    if EMAIL_RE.search(entry.answer):
        problems.append("La réponse contient une adresse e-mail : renvoyez vers le formulaire de contact.")
    if entry.kind == "procedure" and re.search(r"^#{1,3}\s", entry.answer, re.MULTILINE):
        problems.append("Une procédure ne peut pas contenir de titre Markdown (#) dans sa réponse.")
    return problems


def diff_text(before: dict | None, after: dict | None) -> str:
    """Unified diff of two entry states (one field per block), for the history view."""
    def lines(state: dict | None) -> list[str]:
        if not state:
            return []
        out = []
        for name, label in DIFF_LABELS.items():
            value = state.get(name)
            value = STATUS_WORDS.get(value, value) if name == "status" else value
            values = value if isinstance(value, list) else str(value or "").splitlines()
            if name == "answer":  # one sentence a line: a changed word shows in its sentence, not the paragraph
                values = [part for v in values for part in re.split(r"(?<=[.!?])\s+", v) if part]
            out += [f"{label} : {v}" for v in values]
        return out

    return "\n".join(difflib.unified_diff(lines(before), lines(after), "avant", "après", lineterm="", n=1))


class KnowledgeBase:
    """Seed import, export, editing and the published snapshot of the KB in the database."""

    def __init__(self, db, config: RagConfig, state=None) -> None:
        from storage import AppStateRepository

        self.repo = KbRepository(db)
        self.state = state or AppStateRepository(db)
        self.config = config
        self._lock = threading.Lock()

    # --- seed, import, export -------------------------------------------------------------
    def import_dir(self, kb_dir: Path, author: str = "import") -> int:
        """Replace the KB by the files of kb_dir (JSON, Markdown, CSV, PDF) and publish it as is."""
        entries = load_kb(kb_dir)
        if not entries:
            raise KbError(f"aucune entrée trouvée dans {kb_dir}")
        self.repo.replace_all([e.to_dict() for e in entries], author=author)
        self._publish_snapshot(entries, author=author, note=f"import de {kb_dir.name}", action="import")
        return len(entries)

    def ensure_seeded(self, seed_dir: Path | None = None) -> bool:
        """Import the shipped seed when the KB tables are empty (first start); True if this call did.

        Replicas starting together on an empty database import it once: entries, first version and
        the published pointer are written in one transaction that only an empty KB accepts
        (``KbRepository.seed``); the others find it seeded.
        """
        from rag.index import fingerprint
        from rag.llm.selection import now_iso

        if self.repo.count() or self._read()["stack"]:
            return False
        kb_dir = seed_dir or self.config.kb_dir
        with self._lock:
            entries = load_kb(kb_dir)
            if not entries:
                raise KbError(f"aucune entrée trouvée dans {kb_dir}")
            note = f"import de {kb_dir.name}"
            version = self.repo.seed(
                [e.to_dict() for e in entries], author="seed", fingerprint=fingerprint(self.config, entries),
                note=note, pointer_key=STATE_KEY,
                pointer=lambda vid: {"stack": [vid], "journal": [{"action": "import", "at": now_iso(), "by": "seed",
                                                                 "version": vid, "previous": None, "note": note}]},
            )  # fmt: skip
        if version is None:
            return False
        log.info("Knowledge base seeded from %s: %d entries", kb_dir, len(entries))
        return True

    def export_dir(self, out_dir: Path, working: bool = False) -> list[Path]:
        """Write the published KB (or the working copy) in the seed's formats under out_dir."""
        from rag.kb_files import write_files

        return write_files(self.working_entries() if working else self.published_entries(), out_dir)

    # --- reading ----------------------------------------------------------------------------
    def working_entries(self) -> list[Entry]:
        """The draft KB: every entry not retired, in KB order."""
        return [to_entry(entry_dict(r)) for r in self.repo.list(include_retired=False)]

    def published_version(self):
        """The KbVersion in service, or None before the first import."""
        stack = self._read()["stack"]
        return self.repo.version(stack[-1]) if stack else None

    def published_entries(self) -> list[Entry]:
        """The entries of the published snapshot (what the index is built from)."""
        version = self.published_version()
        return [to_entry(e) for e in version.entries] if version else []

    def pending(self) -> dict[str, list[str]]:
        """What the next publication changes: ids added, changed and retired since the published version.

        Agents' proposals no editor has taken up are listed apart (``proposed``): they are not published.
        """
        published = {e.id: e for e in self.published_entries()}
        working = {e.id: e for e in self.working_entries()}
        proposed = self.repo.proposed_ids()
        return {
            "added": [i for i in working if i not in published and i not in proposed],
            "changed": [i for i, e in working.items() if i in published and e != published[i] and i not in proposed],
            "retired": [i for i in published if i not in working],
            "proposed": sorted(proposed),
        }

    def search(self, query: str = "", category: str = "", status: str = "") -> list[dict]:
        """Entries matching a text (id, title, phrasings, answer), a category and a status."""
        needle = query.strip().casefold()
        rows = []
        for row in self.repo.list():
            data = {**entry_dict(row), "status": row.status, "author": row.author, "updated_at": row.updated_at}
            text = " ".join([row.id, row.title, row.answer, *row.questions]).casefold()
            if (not needle or needle in text) and (not category or row.category == category) and (
                not status or row.status == status
            ):
                rows.append(data)
        return rows

    def categories(self) -> list[str]:
        """Categories in use."""
        return sorted({r.category for r in self.repo.list()})

    def history(self, entry_id: str) -> list[dict]:
        """Revisions of an entry, newest first, each with its diff."""
        return [{"id": r.id, "action": r.action, "author": r.author, "at": r.created_at, "note": r.note,
                 "diff": diff_text(r.before, r.after)} for r in self.repo.revisions(entry_id)]  # fmt: skip

    # --- editing ------------------------------------------------------------------------------
    def save_entry(self, data: dict[str, Any], *, author: str, role: str, note: str = "") -> list[str]:
        """Create or update an entry after validation; agents' changes are proposals. Returns warnings."""
        existing = self.repo.get(data["id"]) if data.get("id") else None
        base = entry_dict(existing) if existing else {"kind": "faq", "tags": [], "links": [], "category": "général"}
        merged = {**base, **{k: v for k, v in data.items() if k in ENTRY_FIELDS and v is not None}}
        merged["questions"] = [q.strip() for q in merged.get("questions", []) if q.strip()]
        merged["links"] = [u.strip() for u in merged.get("links", []) if u.strip()]
        merged["answer"] = merged.get("answer", "").strip()
        merged["title"] = (merged.get("title") or (merged["questions"] or [""])[0]).strip()
        if not merged.get("id"):
            merged["id"] = self._new_id(merged["category"])
        if not merged.get("source"):
            merged["source"] = f"faq/{slugify(merged['category'])}.json"
        if role not in (*EDITOR_ROLES, "agent"):
            raise KbError("rôle non autorisé.")
        if existing is not None and role not in EDITOR_ROLES and existing.status != "draft":
            raise KbError("Les conseillers ne peuvent que proposer de nouvelles entrées ou modifier un brouillon.")
        entry = to_entry(merged)
        problems = validate(entry, self.working_entries(), to_entry(base) if existing else None)
        if problems:
            raise KbError(" ".join(problems))
        action = "propose" if role not in EDITOR_ROLES else ("update" if existing else "create")
        self.repo.save(entry.to_dict(), author=author, action=action, note=note)
        return []

    def add_phrasing(self, entry_id: str, phrasing: str, *, author: str, role: str) -> None:
        """Add a customer's wording as a phrasing of an entry (becomes a draft)."""
        row = self._get(entry_id)
        self.save_entry({"id": entry_id, "questions": [*row.questions, phrasing]}, author=author, role=role,
                        note="formulation ajoutée")  # fmt: skip

    def remove_phrasing(self, entry_id: str, phrasing: str, *, author: str, role: str) -> None:
        """Remove one phrasing of an entry."""
        row = self._get(entry_id)
        kept = [q for q in row.questions if q != phrasing]
        self.save_entry({"id": entry_id, "questions": kept}, author=author, role=role, note="formulation retirée")

    def retire(self, entry_id: str, *, author: str, role: str) -> None:
        """Take an entry out of the KB at the next publication (editors only)."""
        self._editor(role)
        row = self._get(entry_id)
        self.repo.save(entry_dict(row), author=author, action="retire", status="retired")

    def restore(self, revision_id: int, *, author: str, role: str) -> None:
        """Bring an entry back to the state after a given revision (as a draft)."""
        self._editor(role)
        revision = self.repo.revision(revision_id)
        if revision is None or revision.after is None:
            raise KbError("révision introuvable.")
        self.repo.save({k: revision.after[k] for k in ENTRY_FIELDS}, author=author, action="restore",
                       note=f"restauration de la révision {revision_id}")  # fmt: skip

    def _get(self, entry_id: str):
        row = self.repo.get(entry_id)
        if row is None:
            raise KbError(f"entrée introuvable : {entry_id}")
        return row

    @staticmethod
    def _editor(role: str) -> None:
        if role not in EDITOR_ROLES:
            raise KbError("Réservé aux formateurs et administrateurs.")

    def _new_id(self, category: str) -> str:
        prefix = f"kb-{slugify(category)[:12]}-"
        taken = {r.id for r in self.repo.list()}
        n = 1
        while f"{prefix}{n:03d}" in taken:
            n += 1
        return f"{prefix}{n:03d}"

    # --- publication pointer ----------------------------------------------------------------------
    def _read(self) -> dict:
        data = self.state.get(STATE_KEY) or {}
        return {"stack": list(data.get("stack", [])), "journal": list(data.get("journal", []))}

    def journal(self) -> list[dict]:
        """Publications, rollbacks and overrides, newest first."""
        return list(reversed(self._read()["journal"]))

    def _publish_snapshot(self, entries: list[Entry], *, author: str, note: str = "", action: str = "publish",
                          gate: dict | None = None) -> int:  # fmt: skip
        """Store a snapshot and make it the published version; returns its id."""
        from rag.index import fingerprint
        from rag.llm.selection import now_iso

        version = self.repo.add_version([e.to_dict() for e in entries], author=author, note=note,
                                        fingerprint=fingerprint(self.config, entries), gate=gate)  # fmt: skip
        data = self._read()
        previous = data["stack"][-1] if data["stack"] else None
        data["stack"].append(version.id)
        data["journal"] = [*data["journal"], {"action": action, "at": now_iso(), "by": author, "version": version.id,
                                              "previous": previous, "note": note}][-JOURNAL_LIMIT:]  # fmt: skip
        self.state.set(STATE_KEY, data)
        self.repo.mark_published([e.id for e in entries])
        return version.id

    def rollback(self, *, author: str) -> int:
        """Serve the previous publication again; returns its version id."""
        from rag.llm.selection import now_iso

        with self._lock:
            data = self._read()
            if len(data["stack"]) < 2:
                raise KbError("aucune publication précédente à restaurer.")
            undone = data["stack"].pop()
            data["journal"] = [*data["journal"], {"action": "rollback", "at": now_iso(), "by": author,
                                                  "version": data["stack"][-1], "previous": undone, "note": ""}]  # fmt: skip
            self.state.set(STATE_KEY, data)
        return data["stack"][-1]

    def sync_index(self, embedder=None) -> Any:
        """Build the index of the published version if it is not the one in service (no-op otherwise)."""
        from rag.index import build_index

        self.ensure_seeded()
        return build_index(self.config, embedder, entries=self.published_entries())
