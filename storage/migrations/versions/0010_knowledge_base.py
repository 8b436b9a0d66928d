"""The knowledge base in the database: entries (working copy), their revisions, published versions.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 10:00:00

``kb_entries`` is what trainers edit (status draft / published / retired); ``kb_revisions`` keeps
who changed what and when (the entry before and after, for the diff and restore); ``kb_versions``
holds each published snapshot with its index fingerprint and the evaluation gate's verdict. The
version in service is the ``kb_published`` pointer in ``app_state`` (a stack, so rollback is one
step). ``datasets/raw/`` seeds the tables on first start (``rag/kb.py``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "kind IN ('faq', 'procedure', 'conversation', 'pdf')"
STATUSES = "status IN ('draft', 'published', 'retired')"


def upgrade() -> None:
    """Create the three tables."""
    op.create_table(
        "kb_entries",
        sa.Column("id", sa.String(160), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("questions", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(KINDS, name=op.f("ck_kb_entries_kind")),
        sa.CheckConstraint(STATUSES, name=op.f("ck_kb_entries_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_entries")),
    )
    op.create_index("ix_kb_entries_source_position", "kb_entries", ["source", "position"])
    op.create_table(
        "kb_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.String(160), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_revisions")),
    )
    op.create_index(op.f("ix_kb_revisions_entry_id"), "kb_revisions", ["entry_id"])
    op.create_table(
        "kb_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("entries", sa.JSON(), nullable=False),
        sa.Column("gate", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_versions")),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("kb_versions")
    op.drop_index(op.f("ix_kb_revisions_entry_id"), table_name="kb_revisions")
    op.drop_table("kb_revisions")
    op.drop_index("ix_kb_entries_source_position", table_name="kb_entries")
    op.drop_table("kb_entries")
