"""Several replicas on one database: one ticket per source post, and a claimable webhook outbox.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 12:00:00

``tickets.source_key`` (unique, e.g. ``mastodon:<status id>``) makes "at most one ticket per
Mastodon post" a database rule, whichever replica's monitor sees the post; existing links from
``mastodon_posts.ticket_id`` are carried over. ``webhook_deliveries`` becomes an outbox that any
replica can work: ``next_attempt_at`` schedules retries (they survive restarts), and a delivery
is claimed by one replica (``claimed_by`` until ``claimed_until``) while it is being sent.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = """
UPDATE tickets SET source_key = (
    SELECT 'mastodon:' || MIN(status_id) FROM mastodon_posts WHERE mastodon_posts.ticket_id = tickets.id
)
WHERE id IN (SELECT ticket_id FROM mastodon_posts WHERE ticket_id IS NOT NULL)
"""


def upgrade() -> None:
    """Add the source key of tickets and the outbox columns of webhook deliveries."""
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("source_key", sa.String(80), nullable=True))
        batch.create_unique_constraint(op.f("uq_tickets_source_key"), ["source_key"])
    op.execute(BACKFILL)
    op.add_column("webhook_deliveries", sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("webhook_deliveries", sa.Column("claimed_by", sa.String(128), nullable=True))
    op.add_column("webhook_deliveries", sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_webhook_deliveries_status_next_attempt_at", "webhook_deliveries", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_webhook_deliveries_status_next_attempt_at", table_name="webhook_deliveries")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
        batch.drop_column("next_attempt_at")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint(op.f("uq_tickets_source_key"), type_="unique")
        batch.drop_column("source_key")
