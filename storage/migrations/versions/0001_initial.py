"""Initial schema: customers, conversations, messages, feedback, tickets, social and state.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tz() -> sa.DateTime:
    """Return the timestamp type used everywhere: timezone-aware (UTC by convention)."""
    return sa.DateTime(timezone=True)


def _in(column: str, values: tuple[str, ...]) -> str:
    """Build the SQL of a CHECK constraint restricting ``column`` to ``values``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# Frozen copies of the allowed values at this revision (models may evolve later).
CHANNELS = ("web", "mastodon", "api")
CONVERSATION_STATUSES = ("bot", "escalated", "agent", "closed")
MESSAGE_ROLES = ("user", "assistant", "agent", "system")
TICKET_PRIORITIES = ("LOW", "MEDIUM", "HIGH", "URGENT")
TICKET_STATUSES = ("OPEN", "IN_PROGRESS", "RESOLVED", "CLOSED")
TICKET_EVENT_KINDS = ("created", "status", "assigned", "note", "reply")
URGENCIES = ("LOW", "MEDIUM", "HIGH")
REPLY_STATUSES = ("none", "pending", "sent", "skipped")
STAFF_ROLES = ("agent", "trainer", "admin")


def upgrade() -> None:
    """Create every table of the first schema, parents before children."""
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("created_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
    )
    op.create_index("ix_customers_phone", "customers", ["phone"], unique=True)

    op.create_table(
        "conversations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("context", sa.JSON(), nullable=True),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("updated_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_conversations"),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_conversations_customer_id_customers",
            ondelete="SET NULL",
        ),
        sa.CheckConstraint(_in("channel", CHANNELS), name=op.f("ck_conversations_channel")),
        sa.CheckConstraint(
            _in("status", CONVERSATION_STATUSES), name=op.f("ck_conversations_status")
        ),
    )
    op.create_index("ix_conversations_customer_id", "conversations", ["customer_id"])

    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.Column("created_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_messages_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(_in("role", MESSAGE_ROLES), name=op.f("ck_messages_role")),
    )
    op.create_index("ix_messages_conversation_id", "messages", ["conversation_id"])
    op.create_index("ix_messages_created_at", "messages", ["created_at"])

    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(32), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_feedback_message_id_messages",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_feedback_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("message_id", name="uq_feedback_message_id"),
        sa.CheckConstraint("rating IN (1, -1)", name=op.f("ck_feedback_rating")),
    )
    op.create_index("ix_feedback_conversation_id", "feedback", ["conversation_id"])

    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(32), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(64), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("resolution_notes", sa.Text(), nullable=True),
        sa.Column("csat", sa.Integer(), nullable=True),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("updated_at", _tz(), nullable=False),
        sa.Column("resolved_at", _tz(), nullable=True),
        sa.Column("sla_due_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_tickets_conversation_id_conversations",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_tickets_customer_id_customers",
            ondelete="SET NULL",
        ),
        sa.CheckConstraint(_in("priority", TICKET_PRIORITIES), name=op.f("ck_tickets_priority")),
        sa.CheckConstraint(_in("status", TICKET_STATUSES), name=op.f("ck_tickets_status")),
        sa.CheckConstraint("csat IS NULL OR csat BETWEEN 1 AND 5", name=op.f("ck_tickets_csat")),
    )
    op.create_index("ix_tickets_status", "tickets", ["status"])
    op.create_index("ix_tickets_priority", "tickets", ["priority"])
    op.create_index("ix_tickets_created_at", "tickets", ["created_at"])
    op.create_index("ix_tickets_conversation_id", "tickets", ["conversation_id"])
    op.create_index("ix_tickets_customer_id", "tickets", ["customer_id"])
    # At most one live (not CLOSED) ticket per conversation.
    op.create_index(
        "uq_tickets_live_conversation",
        "tickets",
        ["conversation_id"],
        unique=True,
        sqlite_where=sa.text("status != 'CLOSED'"),
        postgresql_where=sa.text("status != 'CLOSED'"),
    )

    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("created_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_events"),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name="fk_ticket_events_ticket_id_tickets",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(_in("kind", TICKET_EVENT_KINDS), name=op.f("ck_ticket_events_kind")),
    )
    op.create_index("ix_ticket_events_ticket_id", "ticket_events", ["ticket_id"])

    op.create_table(
        "contact_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("conversation_id", sa.String(32), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("expires_at", _tz(), nullable=False),
        sa.Column("used_at", _tz(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_contact_tokens"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_contact_tokens_conversation_id_conversations",
            ondelete="SET NULL",
        ),
    )

    op.create_table(
        "mastodon_posts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status_id", sa.String(64), nullable=False),
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("url", sa.String(1024), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("fetched_at", _tz(), nullable=False),
        sa.Column("is_complaint", sa.Boolean(), nullable=False),
        sa.Column("complaint_score", sa.Float(), nullable=False),
        sa.Column("urgency", sa.String(8), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reply_status", sa.String(16), nullable=False),
        sa.Column("reply_text", sa.Text(), nullable=True),
        sa.Column("reply_status_id", sa.String(64), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_mastodon_posts"),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name="fk_mastodon_posts_ticket_id_tickets",
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint("status_id", name="uq_mastodon_posts_status_id"),
        sa.CheckConstraint(
            f"urgency IS NULL OR {_in('urgency', URGENCIES)}",
            name=op.f("ck_mastodon_posts_urgency"),
        ),
        sa.CheckConstraint(
            _in("reply_status", REPLY_STATUSES), name=op.f("ck_mastodon_posts_reply_status")
        ),
    )
    op.create_index("ix_mastodon_posts_created_at", "mastodon_posts", ["created_at"])

    op.create_table(
        "staff_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_staff_users"),
        sa.UniqueConstraint("username", name="uq_staff_users_username"),
        sa.CheckConstraint(_in("role", STAFF_ROLES), name=op.f("ck_staff_users_role")),
    )

    op.create_table(
        "app_state",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("updated_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_app_state"),
    )


def downgrade() -> None:
    """Drop every table, children before parents (indexes go with their tables)."""
    for table in (
        "app_state",
        "staff_users",
        "mastodon_posts",
        "contact_tokens",
        "ticket_events",
        "tickets",
        "feedback",
        "messages",
        "conversations",
        "customers",
    ):
        op.drop_table(table)
