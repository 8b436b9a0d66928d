"""Indexes for the analytics tab: messages by role and time, conversations by time, negative feedback.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 00:00:00

``conversations(created_at, id)`` and ``feedback(conversation_id, rating)`` cover the escalation /
automatic-resolution query; ``messages(role, created_at)`` serves the per-role range scans.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the indexes."""
    op.create_index("ix_messages_role_created_at", "messages", ["role", "created_at"])
    op.create_index("ix_conversations_created_at_id", "conversations", ["created_at", "id"])
    op.create_index("ix_feedback_conversation_id_rating", "feedback", ["conversation_id", "rating"])


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_feedback_conversation_id_rating", table_name="feedback")
    op.drop_index("ix_conversations_created_at_id", table_name="conversations")
    op.drop_index("ix_messages_role_created_at", table_name="messages")
