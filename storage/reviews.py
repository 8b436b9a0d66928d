"""Repository of the review queue's decisions (``review_items``): one row per reviewed candidate.

Texts arrive already redacted (``training/review.py`` redacts them); this layer only stores and
reads. Saving the same ``source_key`` again updates the decision (a reviewer corrects it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models import REVIEW_DESTINATIONS, REVIEW_SOURCES, REVIEW_STATUSES, ReviewItem, utcnow

FIELDS = ("source", "category", "question", "bot_answer", "details", "reference_answer", "status", "destination",
          "entry_id", "reviewer")  # fmt: skip


class ReviewRepository:
    """Reads and writes of ``review_items``, one short transaction per call."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def decided_keys(self) -> set[str]:
        """Source keys of every reviewed candidate (approved or rejected)."""
        with self.db.read() as session:
            return set(session.scalars(select(ReviewItem.source_key)))

    def get(self, source_key: str) -> ReviewItem | None:
        """The decision on one candidate, or None."""
        with self.db.read() as session:
            return session.scalars(select(ReviewItem).where(ReviewItem.source_key == source_key)).one_or_none()

    def save(self, source_key: str, **values: Any) -> ReviewItem:
        """Record (or correct) the decision on ``source_key``; ``values`` are the columns of FIELDS."""
        unknown = set(values) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        if values.get("source") not in REVIEW_SOURCES or values.get("status") not in REVIEW_STATUSES:
            raise ValueError("invalid source or status")
        if values.get("destination") not in (None, *REVIEW_DESTINATIONS):
            raise ValueError(f"invalid destination {values.get('destination')!r}")
        for attempt in range(2):  # a concurrent first save of the same key: the second one updates
            try:
                with self.db.write() as session:
                    row = session.scalars(select(ReviewItem).where(ReviewItem.source_key == source_key)).one_or_none()
                    if row is None:
                        row = ReviewItem(source_key=source_key)
                        session.add(row)
                    for name, value in values.items():
                        setattr(row, name, value)
                    row.updated_at = utcnow()
                    session.flush()
                    return row
            except IntegrityError:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def list(self, status: str | None = None, destinations: tuple[str, ...] = ()) -> list[ReviewItem]:
        """Decisions, newest first, optionally of one status and some destinations."""
        query = select(ReviewItem).order_by(ReviewItem.updated_at.desc(), ReviewItem.id.desc())
        if status:
            query = query.where(ReviewItem.status == status)
        if destinations:
            query = query.where(ReviewItem.destination.in_(destinations))
        with self.db.read() as session:
            return list(session.scalars(query))
