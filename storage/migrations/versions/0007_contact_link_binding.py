"""Mastodon contact links: single use bound to the first browser, and one conversation per post.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 00:00:00

``contact_tokens.binding_hash`` is the SHA-256 of the secret handed to the browser that first
used a link (only that browser may resume its conversation through the link again).
``mastodon_posts.conversation_id`` is the conversation opened for a post: the one holding its
HIGH-urgency ticket, or the one opened when the customer first follows the link. Existing
posts with a ticket get the ticket's conversation.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = """
UPDATE mastodon_posts SET
    conversation_id = (SELECT conversation_id FROM tickets WHERE tickets.id = mastodon_posts.ticket_id)
WHERE ticket_id IS NOT NULL
"""


def upgrade() -> None:
    """Add the binding hash and the post's conversation (filled from its ticket)."""
    op.add_column("contact_tokens", sa.Column("binding_hash", sa.String(64), nullable=True))
    with op.batch_alter_table("mastodon_posts") as batch:
        batch.add_column(sa.Column("conversation_id", sa.String(32), nullable=True))
        batch.create_foreign_key(
            op.f("fk_mastodon_posts_conversation_id_conversations"),
            "conversations",
            ["conversation_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.execute(BACKFILL)


def downgrade() -> None:
    """Drop both columns (links become reusable within their validity again)."""
    with op.batch_alter_table("mastodon_posts") as batch:
        batch.drop_constraint(op.f("fk_mastodon_posts_conversation_id_conversations"), type_="foreignkey")
        batch.drop_column("conversation_id")
    with op.batch_alter_table("contact_tokens") as batch:
        batch.drop_column("binding_hash")
