"""Repository of the knowledge base: entries (working copy), their revisions and published versions.

Entries are exchanged as plain dicts with the fields of ``rag.sources.Entry`` (id, title, answer,
category, questions, tags, links, source, kind) plus ``status`` and ``author`` when read back, so
this layer does not depend on ``rag``. Every change writes a revision (the entry before and after).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models import KB_KINDS, KB_STATUSES, AppState, KbEntry, KbRevision, KbVersion, utcnow

ENTRY_FIELDS = ("id", "title", "answer", "category", "questions", "tags", "links", "source", "kind")


def entry_dict(row: KbEntry) -> dict[str, Any]:
    """The content fields of an entry row (the ``Entry`` dataclass's fields)."""
    return {name: list(getattr(row, name)) if name in ("questions", "tags", "links") else getattr(row, name)
            for name in ENTRY_FIELDS}  # fmt: skip


def kb_order(item: dict[str, Any] | KbEntry) -> tuple:
    """Sort key giving the file loaders' order: source path (compared by parts), then position."""
    source = item["source"] if isinstance(item, dict) else item.source
    position = item.get("_position", 0) if isinstance(item, dict) else item.position
    return PurePosixPath(source).parts, position


class KbRepository:
    """Reads and writes of the KB tables, one short transaction per call."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def count(self) -> int:
        """Number of entries (retired ones included)."""
        with self.db.read() as session:
            return session.scalar(select(func.count()).select_from(KbEntry)) or 0

    def get(self, entry_id: str) -> KbEntry | None:
        """One entry row, or None."""
        with self.db.read() as session:
            return session.get(KbEntry, entry_id)

    def list(self, include_retired: bool = True) -> list[KbEntry]:
        """Every entry, in the KB's order."""
        with self.db.read() as session:
            rows = list(session.scalars(select(KbEntry)))
        return sorted((r for r in rows if include_retired or r.status != "retired"), key=kb_order)

    def save(self, data: dict[str, Any], *, author: str, action: str, status: str = "draft", note: str = "") -> KbEntry:
        """Create or update an entry from ``data`` (its content fields) and record the revision."""
        if status not in KB_STATUSES:
            raise ValueError(f"invalid status {status!r}")
        if data.get("kind", "faq") not in KB_KINDS:
            raise ValueError(f"invalid kind {data.get('kind')!r}")
        with self.db.write() as session:
            row = session.get(KbEntry, data["id"])
            before = {**entry_dict(row), "status": row.status} if row is not None else None
            if row is None:
                last = session.scalar(select(func.max(KbEntry.position)).where(KbEntry.source == data.get("source", "")))
                row = KbEntry(id=data["id"], position=(last + 1) if last is not None else 0)
                session.add(row)
            for name in ENTRY_FIELDS[1:]:
                if name in data:
                    setattr(row, name, list(data[name]) if name in ("questions", "tags", "links") else data[name])
            row.status, row.author = status, author
            session.flush()
            after = {**entry_dict(row), "status": row.status}
            session.add(KbRevision(entry_id=row.id, action=action, author=author, note=note, before=before, after=after))
            return row

    def replace_all(self, entries: list[dict[str, Any]], *, author: str) -> int:
        """Replace every entry by ``entries`` (an import: they arrive published, in this order)."""
        with self.db.write() as session:
            session.execute(delete(KbEntry))
            _add_imported(session, entries, author)
        return len(entries)

    def seed(self, entries: list[dict[str, Any]], *, author: str, fingerprint: str, note: str, pointer_key: str,
             pointer: Callable[[int], Any]) -> int | None:  # fmt: skip
        """First import: entries, their published version and the ``pointer_key`` app-state row in ONE transaction.

        Only when the KB is empty and ``pointer_key`` is unset; returns the version id, or None when
        the KB was already seeded. Replicas starting together cannot both seed: on SQLite the write
        transaction is taken up front (one at a time, the next sees the entries); on PostgreSQL the
        second one's inserts wait for the first commit and then hit the primary keys (IntegrityError,
        rolled back whole). ``pointer(version_id)`` gives the app-state value.
        """
        try:
            with self.db.write() as session:
                if session.scalar(select(func.count()).select_from(KbEntry)) or session.get(AppState, pointer_key):
                    return None
                _add_imported(session, entries, author)
                version = KbVersion(author=author, note=note, fingerprint=fingerprint, entries=entries, gate=None)
                session.add(version)
                session.flush()
                session.add(AppState(key=pointer_key, value=pointer(version.id), updated_at=utcnow()))
                session.flush()
                return version.id
        except IntegrityError:
            return None  # another replica seeded it first

    def mark_published(self, ids: list[str]) -> None:
        """After a publication: these drafts are now as published."""
        with self.db.write() as session:
            for row in session.scalars(select(KbEntry).where(KbEntry.id.in_(ids), KbEntry.status == "draft")):
                row.status = "published"

    def proposed_ids(self) -> set[str]:
        """Drafts whose last change is an agent's proposal (not yet taken up by an editor)."""
        with self.db.read() as session:
            drafts = set(session.scalars(select(KbEntry.id).where(KbEntry.status == "draft")))
            if not drafts:
                return set()
            last = {}
            for entry_id, action in session.execute(
                select(KbRevision.entry_id, KbRevision.action).where(KbRevision.entry_id.in_(drafts)).order_by(KbRevision.id)
            ):
                last[entry_id] = action
        return {entry_id for entry_id, action in last.items() if action == "propose"}

    def revisions(self, entry_id: str) -> list[KbRevision]:
        """History of an entry, newest first."""
        with self.db.read() as session:
            query = select(KbRevision).where(KbRevision.entry_id == entry_id).order_by(KbRevision.id.desc())
            return list(session.scalars(query))

    def revision(self, revision_id: int) -> KbRevision | None:
        """One revision, or None."""
        with self.db.read() as session:
            return session.get(KbRevision, revision_id)

    def add_version(self, entries: list[dict[str, Any]], *, author: str, fingerprint: str, note: str = "",
                    gate: dict[str, Any] | None = None) -> KbVersion:  # fmt: skip
        """Store a published snapshot (the pointer to it is kept by the caller)."""
        with self.db.write() as session:
            version = KbVersion(author=author, note=note, fingerprint=fingerprint, entries=entries, gate=gate)
            session.add(version)
            session.flush()
            return version

    def version(self, version_id: int) -> KbVersion | None:
        """One published snapshot, or None."""
        with self.db.read() as session:
            return session.get(KbVersion, version_id)

    def versions(self, limit: int = 20) -> list[KbVersion]:
        """Latest snapshots, newest first."""
        with self.db.read() as session:
            return list(session.scalars(select(KbVersion).order_by(KbVersion.id.desc()).limit(limit)))


def _add_imported(session, entries: list[dict[str, Any]], author: str) -> None:
    """Add imported entries (published, positions in their file's order) and their revisions to a session."""
    positions: dict[str, int] = {}
    for data in entries:
        position = positions[data["source"]] = positions.get(data["source"], -1) + 1
        session.add(KbEntry(**{k: data[k] for k in ENTRY_FIELDS}, position=position, status="published", author=author))
        session.add(KbRevision(entry_id=data["id"], action="import", author=author, note="", before=None,
                               after={**{k: data[k] for k in ENTRY_FIELDS}, "status": "published"}))  # fmt: skip
