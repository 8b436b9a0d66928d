"""Database handle: lazy engine, SQLite tuning, transactional sessions and Alembic migrations."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Applied on every new SQLite connection: WAL lets readers run while one writer writes.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
    "PRAGMA synchronous=NORMAL",
)


def _is_sqlite_memory(url: URL) -> bool:
    """Tell whether a SQLite URL points to a private in-memory database."""
    database = url.database or ""
    return database in ("", ":memory:") or url.query.get("mode") == "memory"


class Database:
    """One database (SQLite file, in-memory SQLite or PostgreSQL) shared by the repositories.

    The engine is created on first use so that building a ``Database`` has no side effect.
    """

    def __init__(self, url: str | URL, *, echo: bool = False, **engine_kwargs: Any) -> None:
        self._url = make_url(url)
        self._echo = echo
        self._engine_kwargs = engine_kwargs
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Database({self.url!r})"

    @property
    def url(self) -> str:
        """Return the URL with its password masked, safe to log."""
        return self._url.render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        """Tell whether the backend is SQLite (some SQL and migrations differ)."""
        return self._url.get_backend_name() == "sqlite"

    @property
    def engine(self) -> Engine:
        """Return the engine, creating it (and a SQLite file's folder) on first access."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Engine:
        """Build the engine with the pool and per-connection settings the backend needs."""
        kwargs: dict[str, Any] = {"echo": self._echo}
        if not self.is_sqlite:
            kwargs["pool_pre_ping"] = True
            kwargs.update(self._engine_kwargs)
            return create_engine(self._url, **kwargs)

        memory = _is_sqlite_memory(self._url)
        if memory:
            # One shared connection, otherwise every session would see its own empty DB.
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            Path(self._url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs.update(self._engine_kwargs)
        engine = create_engine(self._url, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the sqlite3 module, decide when transactions start, so
            # DDL is transactional and a failed migration rolls back completely.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                for pragma in SQLITE_PRAGMAS:
                    if memory and "journal_mode" in pragma:
                        continue  # in-memory databases have no WAL
                    cursor.execute(pragma)
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            # Sessions take the write lock up front (see ``session``); plain connections stay deferred.
            connection.exec_driver_sql(connection.get_execution_options().get("sqlite_begin", "BEGIN"))

        return engine

    def _session_factory(self) -> sessionmaker[Session]:
        """Return the sessionmaker; objects stay readable after commit (no expiry)."""
        if self._sessions is None:
            self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        return self._sessions

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session in a transaction: commit on success, roll back on any error."""
        with self._session_factory().begin() as session:
            if self.is_sqlite:
                # BEGIN IMMEDIATE: in WAL mode a deferred transaction that has read cannot wait for a
                # busy writer (SQLite fails at once with "database is locked"); taking the lock first
                # makes busy_timeout apply. Short sessions keep the cost to brief queueing.
                session.connection(execution_options={"sqlite_begin": "BEGIN IMMEDIATE"})
            yield session

    def _alembic_config(self) -> Config:
        """Build an in-memory Alembic config pointing to ``storage/migrations``."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        return config

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision``; already applied migrations are skipped."""
        config = self._alembic_config()
        with self.engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()

    def downgrade(self, revision: str = "base") -> None:
        """Downgrade the schema to ``revision`` (``base`` drops every table)."""
        config = self._alembic_config()
        with self.engine.connect() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
            connection.commit()

    def current_revision(self) -> str | None:
        """Return the revision the database is at, or None before the first migration."""
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def dispose(self) -> None:
        """Close pooled connections; the engine is rebuilt if the database is used again."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = None
            self._sessions = None
