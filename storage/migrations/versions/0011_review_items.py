"""Review queue decisions: reference answers approved for the training set, the KB, or both.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 00:00:00

One row per reviewed candidate (a 👎 answer, an escalated conversation, a knowledge-gap question),
keyed by ``source_key`` (``feedback:<id>``, ``ticket:<id>``, ``gap:<message id>``): the unique
constraint makes a candidate reviewed once, whichever replica or reviewer saves it. Texts are
redacted before they are stored (``training/review.py``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SOURCES = "source IN ('thumbs_down', 'escalation', 'gap')"
STATUSES = "status IN ('approved', 'rejected')"
DESTINATIONS = "destination IS NULL OR destination IN ('training', 'kb', 'both')"


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "review_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_key", sa.String(80), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("bot_answer", sa.Text(), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("reference_answer", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("destination", sa.String(16), nullable=True),
        sa.Column("entry_id", sa.String(160), nullable=True),
        sa.Column("reviewer", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(SOURCES, name=op.f("ck_review_items_source")),
        sa.CheckConstraint(STATUSES, name=op.f("ck_review_items_status")),
        sa.CheckConstraint(DESTINATIONS, name=op.f("ck_review_items_destination")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_items")),
        sa.UniqueConstraint("source_key", name=op.f("uq_review_items_source_key")),
    )
    op.create_index(op.f("ix_review_items_status"), "review_items", ["status"])


def downgrade() -> None:
    """Drop it."""
    op.drop_index(op.f("ix_review_items_status"), table_name="review_items")
    op.drop_table("review_items")
