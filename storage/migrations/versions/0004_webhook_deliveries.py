"""Delivery log of the API's signed webhooks (ticket.created, ticket.updated, conversation.escalated).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 00:00:00

One row per (event, URL): the exact signed body, the number of attempts, the last HTTP status or
error, and whether it was delivered; pending rows are resent after a restart.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WEBHOOK_EVENTS = ("ticket.created", "ticket.updated", "conversation.escalated")
WEBHOOK_STATUSES = ("pending", "delivered", "failed")


def _in(column: str, values: tuple[str, ...]) -> str:
    """Build the SQL of a CHECK constraint restricting ``column`` to ``values``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    """Create the delivery log."""
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_in("event", WEBHOOK_EVENTS), name=op.f("ck_webhook_deliveries_event")),
        sa.CheckConstraint(_in("status", WEBHOOK_STATUSES), name=op.f("ck_webhook_deliveries_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index("ix_webhook_deliveries_status_created_at", "webhook_deliveries", ["status", "created_at"])


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_webhook_deliveries_status_created_at", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
