"""Repository of monitored Mastodon posts and their reply state machine.

States: ``none`` (no reply) | ``pending`` (draft awaiting an agent) -> ``queued`` (approved) ->
``sending`` (claimed by exactly one sender) -> ``sent``; ``pending`` -> ``skipped``;
``sending`` -> ``failed`` (permanent error) or back to ``queued`` (retry). Every move is a
conditional UPDATE (compare-and-set), so two senders can never both claim one post.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.db import Database
from storage.models import Conversation, MastodonPost, Message, utcnow


@dataclass
class PostFilter:
    """Filters of the social tab's post list."""

    complaints_only: bool = False
    urgency: str | None = None
    reply_status: str | None = None
    limit: int = 200


class SocialPostRepository:
    """Reads and writes ``mastodon_posts``; one short transaction per call."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def insert_if_new(self, values: dict[str, Any]) -> tuple[MastodonPost, bool]:
        """Insert a post unless its status_id is already stored; return (row, inserted)."""
        insert = pg_insert if self.db.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(MastodonPost).values(**values).on_conflict_do_nothing(index_elements=["status_id"])
        with self.db.session() as session:
            # RETURNING, not rowcount: psycopg reports -1 for INSERT .. ON CONFLICT DO NOTHING here.
            inserted = session.execute(stmt.returning(MastodonPost.id)).first() is not None
            row = session.scalars(select(MastodonPost).where(MastodonPost.status_id == values["status_id"])).one()
            return row, inserted

    def get(self, post_id: int) -> MastodonPost | None:
        """Return a post by primary key, or None."""
        with self.db.session() as session:
            return session.get(MastodonPost, post_id)

    def by_status_id(self, status_id: str) -> MastodonPost | None:
        """Return the post stored for a Mastodon status id, or None."""
        with self.db.session() as session:
            return session.scalars(select(MastodonPost).where(MastodonPost.status_id == status_id)).one_or_none()

    def list(self, flt: PostFilter | None = None) -> list[MastodonPost]:
        """Posts newest first, filtered for the social tab."""
        flt = flt or PostFilter()
        stmt = select(MastodonPost)
        if flt.complaints_only:
            stmt = stmt.where(MastodonPost.is_complaint.is_(True))
        if flt.urgency:
            stmt = stmt.where(MastodonPost.urgency == flt.urgency)
        if flt.reply_status:
            stmt = stmt.where(MastodonPost.reply_status == flt.reply_status)
        with self.db.session() as session:
            return list(
                session.scalars(stmt.order_by(MastodonPost.created_at.desc(), MastodonPost.id.desc()).limit(flt.limit))
            )

    def with_status(self, statuses: Iterable[str]) -> list[MastodonPost]:
        """Posts whose reply is in one of these states, oldest first."""
        with self.db.session() as session:
            stmt = select(MastodonPost).where(MastodonPost.reply_status.in_(list(statuses)))
            return list(session.scalars(stmt.order_by(MastodonPost.id)))

    def counts(self) -> dict[str, int]:
        """Number of posts per reply state."""
        with self.db.session() as session:
            rows = session.execute(select(MastodonPost.reply_status, func.count()).group_by(MastodonPost.reply_status))
            return {status: count for status, count in rows}

    def transition(self, post_id: int, from_states: Iterable[str], to_state: str, **values: Any) -> bool:
        """Move a post's reply state only if it is currently in ``from_states`` (atomic compare-and-set)."""
        stmt = (
            update(MastodonPost)
            .where(MastodonPost.id == post_id, MastodonPost.reply_status.in_(list(from_states)))
            .values(reply_status=to_state, reply_updated_at=utcnow(), **values)
        )
        with self.db.session() as session:
            return session.execute(stmt).rowcount == 1

    def set_ticket(self, post_id: int, ticket_id: int) -> None:
        """Link the ticket opened for a HIGH-urgency complaint."""
        with self.db.session() as session:
            session.execute(update(MastodonPost).where(MastodonPost.id == post_id).values(ticket_id=ticket_id))

    def ensure_conversation(self, post_id: int, first_message: str, context: dict[str, Any]) -> str:
        """The post's conversation id, opening it (the post as first message) if it has none yet.

        The post row is locked for the check-and-create, so concurrent callers (the HIGH-urgency
        intake, two first uses of a link) all get the same single conversation.
        """
        with self.db.session() as session:
            post = session.scalars(select(MastodonPost).where(MastodonPost.id == post_id).with_for_update()).one()
            if post.conversation_id is not None:
                return post.conversation_id
            conversation = Conversation(channel="mastodon", status="bot", context=dict(context))
            session.add(conversation)
            session.flush()
            meta = {"source": "mastodon", "handle": context.get("handle"), "post_url": post.url}
            session.add(Message(conversation_id=conversation.id, role="user", content=first_message, meta=meta))
            post.conversation_id = conversation.id
            return conversation.id

    def set_ticket_for_conversation(self, conversation_id: str, ticket_id: int) -> None:
        """Record a ticket opened later in a post's conversation (when the post has none yet)."""
        stmt = (
            update(MastodonPost)
            .where(MastodonPost.conversation_id == conversation_id, MastodonPost.ticket_id.is_(None))
            .values(ticket_id=ticket_id)
        )
        with self.db.session() as session:
            session.execute(stmt)

    def stale_sending(self, older_than: datetime) -> list[MastodonPost]:
        """Posts left in ``sending`` before ``older_than`` (a crash or a lost response)."""
        with self.db.session() as session:
            stmt = select(MastodonPost).where(
                MastodonPost.reply_status == "sending",
                (MastodonPost.reply_updated_at.is_(None)) | (MastodonPost.reply_updated_at < older_than),
            )
            return list(session.scalars(stmt))
