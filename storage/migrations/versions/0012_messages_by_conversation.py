"""Messages indexed by conversation, then time: a turn reads its window without sorting the conversation.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 00:00:00

A chat turn reads the latest 50 messages of its conversation ordered by ``created_at`` and ``id``.
With an index on ``conversation_id`` alone the database fetched every message of the conversation and
sorted them (a 2,000-message conversation: 5.2 ms a turn on SQLite); ``(conversation_id, created_at,
id)`` is walked backwards and stops after 50 (0.4 ms). It also serves every lookup by conversation,
so it replaces the single-column index.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the composite index, then drop the one it covers."""
    op.create_index("ix_messages_conversation_id_created_at_id", "messages", ["conversation_id", "created_at", "id"])
    op.drop_index("ix_messages_conversation_id", table_name="messages")


def downgrade() -> None:
    """Back to the single-column index."""
    op.create_index("ix_messages_conversation_id", "messages", ["conversation_id"])
    op.drop_index("ix_messages_conversation_id_created_at_id", table_name="messages")
