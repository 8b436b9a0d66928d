"""Social reply state machine: queued/sending/failed states, error and timestamp, one reply per post.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 00:00:00

``reply_status`` gains ``queued`` (approved, to send), ``sending`` (claimed by one sender) and
``failed``. The database itself refuses a ``sent`` row without the id of our reply, and two posts
pointing to the same reply, so a bug in the sender cannot record two replies silently.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_REPLY_STATUSES = ("none", "pending", "sent", "skipped")
REPLY_STATUSES = ("none", "pending", "queued", "sending", "sent", "skipped", "failed")
SENT_HAS_ID = "reply_status != 'sent' OR reply_status_id IS NOT NULL"


def _in(column: str, values: tuple[str, ...]) -> str:
    """Build the SQL of a CHECK constraint restricting ``column`` to ``values``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    """Widen the reply states and add the one-reply guards."""
    with op.batch_alter_table("mastodon_posts") as batch:
        batch.drop_constraint(op.f("ck_mastodon_posts_reply_status"), type_="check")
        batch.create_check_constraint(op.f("ck_mastodon_posts_reply_status"), _in("reply_status", REPLY_STATUSES))
        batch.create_check_constraint(op.f("ck_mastodon_posts_sent_has_reply_id"), SENT_HAS_ID)
        batch.add_column(sa.Column("reply_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("reply_updated_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_unique_constraint(op.f("uq_mastodon_posts_reply_status_id"), ["reply_status_id"])
    op.create_index("ix_mastodon_posts_reply_status", "mastodon_posts", ["reply_status"])


def downgrade() -> None:
    """Back to the four reply states (rows in the new states become pending)."""
    op.drop_index("ix_mastodon_posts_reply_status", table_name="mastodon_posts")
    op.execute(
        "UPDATE mastodon_posts SET reply_status = 'pending' WHERE reply_status IN ('queued', 'sending', 'failed')"
    )
    with op.batch_alter_table("mastodon_posts") as batch:
        batch.drop_constraint(op.f("uq_mastodon_posts_reply_status_id"), type_="unique")
        batch.drop_column("reply_updated_at")
        batch.drop_column("reply_error")
        batch.drop_constraint(op.f("ck_mastodon_posts_sent_has_reply_id"), type_="check")
        batch.drop_constraint(op.f("ck_mastodon_posts_reply_status"), type_="check")
        batch.create_check_constraint(op.f("ck_mastodon_posts_reply_status"), _in("reply_status", OLD_REPLY_STATUSES))
