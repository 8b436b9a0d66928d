"""Staff role "evaluator": compares checkpoints and promotes the chat's model (evaluation tab only).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 00:00:00

Only the CHECK constraint on staff_users.role changes; on SQLite the table is rebuilt (batch mode).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ROLES = ("agent", "trainer", "admin")
NEW_ROLES = ("agent", "trainer", "evaluator", "admin")


def _in(column: str, values: tuple[str, ...]) -> str:
    """Build the SQL of a CHECK constraint restricting ``column`` to ``values``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _replace_role_check(roles: tuple[str, ...]) -> None:
    with op.batch_alter_table("staff_users", recreate="always") as batch:
        batch.drop_constraint(op.f("ck_staff_users_role"), type_="check")
        batch.create_check_constraint(op.f("ck_staff_users_role"), _in("role", roles))


def upgrade() -> None:
    """Allow the evaluator role."""
    _replace_role_check(NEW_ROLES)


def downgrade() -> None:
    """Back to three roles (evaluator accounts must be removed or changed first)."""
    op.execute("UPDATE staff_users SET active = false WHERE role = 'evaluator'")  # never silently delete accounts
    op.execute("UPDATE staff_users SET role = 'trainer' WHERE role = 'evaluator'")
    _replace_role_check(OLD_ROLES)
