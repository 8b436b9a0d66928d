"""The contact given in the form is kept per conversation: name, phone and e-mail it was opened with.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 00:00:00

A contact form never rewrites the stored customer (one row per phone number); what each
conversation was opened with lives on the conversation, so agents see who actually wrote and a
phone number used with two names can be flagged. Existing conversations are filled from their
customer; ``contact_phone`` is indexed to find the other names a number was used with.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = """
UPDATE conversations SET
    contact_name = (SELECT full_name FROM customers WHERE customers.id = conversations.customer_id),
    contact_phone = (SELECT phone FROM customers WHERE customers.id = conversations.customer_id),
    contact_email = (SELECT email FROM customers WHERE customers.id = conversations.customer_id)
WHERE customer_id IS NOT NULL
"""


def upgrade() -> None:
    """Add the three contact columns, fill them from the customers, index the phone."""
    op.add_column("conversations", sa.Column("contact_name", sa.String(200), nullable=True))
    op.add_column("conversations", sa.Column("contact_phone", sa.String(20), nullable=True))
    op.add_column("conversations", sa.Column("contact_email", sa.String(320), nullable=True))
    op.execute(BACKFILL)
    op.create_index(op.f("ix_conversations_contact_phone"), "conversations", ["contact_phone"])


def downgrade() -> None:
    """Drop them (the customers keep the first contact each phone number came with)."""
    op.drop_index(op.f("ix_conversations_contact_phone"), table_name="conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("contact_email")
        batch.drop_column("contact_phone")
        batch.drop_column("contact_name")
