"""Alembic environment for MobiliaChat, driven programmatically by ``storage.db.Database``.

``Database.migrate()`` passes its open connection in ``config.attributes["connection"]``. Run
standalone (``alembic`` CLI from the repository root with ``script_location =
storage/migrations`` and ``prepend_sys_path = .``), the URL comes from ``sqlalchemy.url`` or
the ``DATABASE_URL`` environment variable.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from storage.db import Database
from storage.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    """Return the database URL of a standalone run."""
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("Set sqlalchemy.url or DATABASE_URL to run migrations.")
    return url


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    """Configure the context: one transaction per migration, batch mode on SQLite."""
    dialect = connection.dialect.name if connection is not None else (url or "").split(":")[0]
    is_sqlite = dialect.startswith("sqlite")
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        render_as_batch=is_sqlite,
        transaction_per_migration=True,
        # storage.db.Database makes pysqlite emit BEGIN itself, so SQLite DDL is transactional.
        transactional_ddl=True if is_sqlite else None,
        compare_type=True,
        literal_binds=connection is None,
    )


def run_migrations_offline() -> None:
    """Emit the migration SQL without a database (``alembic upgrade --sql``)."""
    _configure(url=_url())
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations on the given connection, or on one opened from the configured URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    database = Database(_url())
    try:
        with database.engine.connect() as own_connection:
            _configure(own_connection)
            with context.begin_transaction():
                context.run_migrations()
            own_connection.commit()
    finally:
        database.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
