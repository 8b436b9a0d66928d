"""Database handle: lazy engine, SQLite tuning, transactional sessions and Alembic migrations."""

from __future__ import annotations

import collections
import fcntl
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK_KEY = 0x4D6F62696C6961  # pg_advisory_lock key of `migrate` ("Mobilia")
# PostgreSQL: a pooled connection idle for longer than this is pinged before use (see _watch_idle).
PING_AFTER_IDLE_S = 2.0
_RETURNED_AT = "mobilia.returned_at"  # connection_record.info key: when the connection went back to the pool

SQLITE_BUSY_TIMEOUT_S = 5.0
# Applied on every new SQLite connection: WAL lets readers run while one writer writes.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",  # SQLITE_BUSY_TIMEOUT_S
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

    def __init__(
        self, url: str | URL, *, echo: bool = False, ping_after_idle_s: float = PING_AFTER_IDLE_S, **engine_kwargs: Any
    ) -> None:
        self._url = make_url(url)
        self._echo = echo
        self.ping_after_idle_s = ping_after_idle_s
        self._engine_kwargs = engine_kwargs
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._read_sessions: sessionmaker[Session] | None = None
        self._read_bind: Engine | None = None  # PostgreSQL: the engine in autocommit (reads)
        self._lock = threading.Lock()
        self._writer = threading.RLock()  # SQLite: this process' writers queue here (see write())
        self._host_writer: _HostWriterLock | None = None  # SQLite file: then the host's processes (see _sqlite_writer)
        self._write_depth = 0  # nested write() calls of the thread holding _writer

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
    def is_memory(self) -> bool:
        """Tell whether this is a private in-memory SQLite database (nothing another process can share)."""
        return self.is_sqlite and _is_sqlite_memory(self._url)

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
        # A failed statement's error names it, not its values (phones, names, messages): errors reach logs.
        kwargs: dict[str, Any] = {"echo": self._echo, "hide_parameters": True}
        if not self.is_sqlite:
            kwargs.update(self._engine_kwargs)
            engine = create_engine(self._url, **kwargs)
            if not kwargs.get("pool_pre_ping"):
                _watch_idle(engine, self.ping_after_idle_s)
            return engine

        memory = _is_sqlite_memory(self._url)
        if memory:
            # One shared connection, otherwise every session would see its own empty DB.
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            Path(self._url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
            # The connection returned last is handed out next. Each SQLite connection has its own page cache,
            # which it drops when it finds the file changed by another connection since its last transaction
            # (WAL). Handed out in turn (the pool's default), every chat turn began on a connection whose cache
            # the others had made stale and read its pages again: 29 pread calls per message under the
            # 50-customer load, 4 when the event loop's one-at-a-time work keeps reusing the same connection.
            kwargs["pool_use_lifo"] = True
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

    def _read_session_factory(self) -> sessionmaker[Session]:
        """The sessionmaker of ``read``: on PostgreSQL its connections run in autocommit (no BEGIN, no COMMIT).

        PostgreSQL's default READ COMMITTED already gives each statement its own snapshot, so a
        read transaction bought no consistency, only two round trips per session. Nothing is ever
        flushed from a read session (``autoflush=False``; ``read`` refuses pending changes).
        """
        if self.is_sqlite:
            return self._session_factory()
        if self._read_sessions is None:
            self._read_sessions = sessionmaker(self._autocommit(), expire_on_commit=False, autoflush=False)
        return self._read_sessions

    def _autocommit(self) -> Engine:
        """PostgreSQL reads' engine: the same pool, in autocommit."""
        if self._read_bind is None:
            self._read_bind = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        return self._read_bind

    @contextmanager
    def write(self) -> Iterator[Session]:
        """Yield a session in a write transaction: commit on success, roll back on any error."""
        with self._sqlite_writer(), self._session_factory().begin() as session:
            if self.is_sqlite:
                # BEGIN IMMEDIATE: in WAL mode a deferred transaction that has read cannot wait for a
                # busy writer (SQLite fails at once with "database is locked"); taking the lock first
                # makes busy_timeout apply. Short sessions keep the cost to brief queueing.
                session.connection(execution_options={"sqlite_begin": "BEGIN IMMEDIATE"})
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """Like ``write`` (same locks, same commit or roll back), a Core connection instead of an ORM session.

        For hot paths that only run Core statements (a chat turn): the session's own bookkeeping
        (begin, connection lookup, commit, close) cost about as much as the turn's statements.
        """
        with self._sqlite_writer(), self._write_transaction() as connection:
            yield connection

    @contextmanager
    def write_connection_if_free(self) -> Iterator[Connection | None]:
        """``write_connection`` when SQLite's writer locks are free right now, else None: nothing waits.

        For a writer on the server's event loop (``storage.SqliteTurnRepository``), where queueing behind
        another writer would stop every other request: it writes from a thread instead.
        """
        with self._sqlite_writer(wait=False) as free:
            if not free:
                yield None
                return
            with self._write_transaction() as connection:
                yield connection

    @contextmanager
    def _write_transaction(self) -> Iterator[Connection]:
        with self.engine.connect() as connection:
            if self.is_sqlite:
                connection.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            with connection.begin():
                yield connection

    @contextmanager
    def write_statement(self) -> Iterator[Connection]:
        """A connection for a write that is a single statement (``storage.repositories.append_turn``).

        PostgreSQL runs it in autocommit: a statement is atomic by itself, and the BEGIN and COMMIT
        round trips are saved. SQLite, where that write is several statements, gets ``write_connection``.
        """
        if self.is_sqlite:
            with self.write_connection() as connection:
                yield connection
            return
        with self._autocommit().connect() as connection:
            yield connection

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """Like ``read``, a Core connection whose statements each read their own snapshot (nothing to commit).

        PostgreSQL in autocommit. SQLite in a deferred transaction that SQLAlchemy begins at its
        first Core statement and rolls back when the connection goes back to the pool; statements run
        on the DBAPI cursor (``storage.repositories._run``) run in SQLite's autocommit, no BEGIN or COMMIT.
        """
        if self.is_sqlite:
            with self.engine.connect() as connection:
                yield connection
            return
        with self._autocommit().connect() as connection:
            yield connection

    @contextmanager
    def _sqlite_writer(self, wait: bool = True) -> Iterator[bool]:
        """Queue for SQLite's single writer (nothing to do on PostgreSQL, whose rows lock themselves).

        This process' writers queue on a lock, each woken as soon as the previous one commits,
        instead of in SQLite's busy handler, which polls with sleeps growing to 100 ms and leaves
        some writers waiting far longer than others (and the CPU idle). The one in front then queues
        with the other processes of the host on the same file (API replicas sharing it): a file lock
        polled every millisecond at most. If either lock stays taken longer than busy_timeout, the
        writer goes on and lets SQLite decide. With ``wait=False`` nothing waits: it yields False (and holds
        nothing) when either lock is taken, True otherwise.
        """
        if not self.is_sqlite:
            yield True
            return
        queued = self._writer.acquire(timeout=SQLITE_BUSY_TIMEOUT_S) if wait else self._writer.acquire(blocking=False)
        host = None
        if queued and self._write_depth == 0 and not self.is_memory:
            host = self._host_writer_lock()
            host = host if host.acquire(SQLITE_BUSY_TIMEOUT_S if wait else 0) else None
            if host is None and not wait:
                self._writer.release()
                queued = False
        if not queued and not wait:
            yield False
            return
        self._write_depth += 1 if queued else 0
        try:
            yield True
        finally:
            self._write_depth -= 1 if queued else 0
            if host is not None:
                host.release()
            if queued:
                self._writer.release()

    def _host_writer_lock(self) -> _HostWriterLock:
        if self._host_writer is None:
            with self._lock:
                if self._host_writer is None:
                    path = Path(self._url.database or "").expanduser()
                    self._host_writer = _HostWriterLock(path.with_name(path.name + ".write.lock"))
        return self._host_writer

    session = write  # the historical name: every session that may write takes the lock up front

    @contextmanager
    def read(self) -> Iterator[Session]:
        """Yield a session for reads only: SQLite never takes its write lock, PostgreSQL opens no transaction.

        SQLite: a deferred transaction, which in WAL mode reads a consistent snapshot while a writer
        commits and never waits for one. PostgreSQL: autocommit, each statement on its own snapshot
        (as READ COMMITTED transactions do anyway). Changing an object inside it is a bug: it raises
        instead of being saved.
        """
        with self._read_session_factory().begin() as session:
            yield session
            if session.new or session.dirty or session.deleted:
                raise RuntimeError("Database.read() sessions cannot write: use Database.write()")

    def _alembic_config(self) -> Config:
        """Build an in-memory Alembic config pointing to ``storage/migrations``."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        return config

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision``; already applied migrations are skipped.

        Runs under a migration lock, so replicas starting together on an empty database migrate
        it once: the others wait, then find it at ``revision`` and do nothing.
        """
        config = self._alembic_config()
        with self.engine.connect() as connection, self._migration_lock(connection):
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()

    @contextmanager
    def _migration_lock(self, connection: Connection) -> Iterator[None]:
        """PostgreSQL: a session advisory lock; SQLite file: an exclusive lock on ``<file>.migrate.lock``."""
        if not self.is_sqlite:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()  # the session lock outlives this transaction; migrations run in their own
            try:
                yield
            finally:
                connection.rollback()  # a failed migration leaves an aborted transaction behind
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                connection.commit()
            return
        if _is_sqlite_memory(self._url):
            yield  # private to this process: nobody to wait for
            return
        lock_path = Path(self._url.database or "").expanduser().with_suffix(".migrate.lock")
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

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

    async def open_async_pool(self, max_size: int) -> Any:
        """PostgreSQL: a pool of psycopg's asynchronous connections, in autocommit, on the running event loop.

        For the API's chat turn, whose two statements then run without a thread (``AsyncTurnRepository``).
        ``psycopg_pool.AsyncConnectionPool`` opens its connections in the background (a database down
        at start-up does not stop the server) and, like this engine's pool, pings one before use only
        when it sat idle for more than ``ping_after_idle_s``. The caller closes it (``await pool.close()``).
        """
        if self.is_sqlite:
            raise ValueError("asynchronous connections are for PostgreSQL only")
        from psycopg_pool import AsyncConnectionPool

        returned_at: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        idle_s = self.ping_after_idle_s

        async def reset(connection: Any) -> None:
            returned_at[connection] = time.monotonic()

        async def check(connection: Any) -> None:
            if time.monotonic() - returned_at.get(connection, time.monotonic()) > idle_s:
                await AsyncConnectionPool.check_connection(connection)  # raises: the pool takes another one

        pool = AsyncConnectionPool(
            self._url.set(drivername="postgresql").render_as_string(hide_password=False),
            min_size=1, max_size=max_size, kwargs={"autocommit": True}, open=False, check=check, reset=reset,
            name="mobilia-async",
        )  # fmt: skip
        pool._pool = _MostRecentFirst()  # its idle connections, empty until it opens (psycopg_pool has no option for it)
        await pool.open(wait=False)
        return pool

    def dispose(self) -> None:
        """Close pooled connections; the engine is rebuilt if the database is used again."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = None
            self._sessions = None
            self._read_sessions = None
            self._read_bind = None


class _MostRecentFirst(collections.deque):
    """The idle connections of ``Database.open_async_pool``'s pool, the one returned last handed out first.

    psycopg_pool takes an idle connection from the left of this deque and puts a returned one on the right:
    connections were handed out in turn, so a chat turn's statements ran on whichever PostgreSQL backend
    process had waited longest, each with its caches cold, and every backend of the pool woke in turn. Put
    back on the left, the most recently used connections serve the turns: under the 50-customer load the
    database server's CPU per message fell from 0.43 to 0.36 ms (medians of eight alternated runs). The pool's
    shrink (every ten minutes, one connection when some sat unused throughout) takes from the left as well: it
    closes a connection that was just used instead of the stalest, which is reopened when next needed.
    """

    def append(self, connection: Any) -> None:
        self.appendleft(connection)


class _HostWriterLock:
    """The writers of a SQLite file across this host's processes: an exclusive ``flock`` on a side file.

    Taken by one thread per process at a time (``Database._sqlite_writer`` holds its process lock first). The
    first try does not wait; after that it polls with sleeps growing from 0.1 to 1 ms (flock has no
    timeout), far shorter than the 1 to 100 ms of SQLite's busy handler.
    """

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self, timeout: float) -> bool:
        """Take the lock; False if it stayed held for ``timeout`` seconds."""
        deadline, pause = None, 0.0001
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                now = time.monotonic()
                deadline = deadline or now + timeout
                if now >= deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, 0.001)

    def release(self) -> None:
        """Let the next writer of the host in."""
        fcntl.flock(self._fd, fcntl.LOCK_UN)


def _watch_idle(engine: Engine, idle_s: float) -> None:
    """Ping a pooled PostgreSQL connection before use only when it sat idle for more than ``idle_s``.

    ``pool_pre_ping`` costs a round trip on every checkout, i.e. on every session. A connection
    that was in use a moment ago is almost surely alive; one idle for a while may have been closed
    by a server restart, so it gets the same ``SELECT 1`` first. A failed ping raises SQLAlchemy's
    ``InvalidatePoolError`` in the pool's ``checkout`` event: the pool drops every connection made
    before now and checks out a fresh one (a database still down raises the connect error, which
    the API answers with 503). A connection that dies while busy fails its statement, which is a
    disconnect error, and that also invalidates the pool, so the next sessions reconnect.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)  # None: a new connection, just opened
        if returned_at is None or time.monotonic() - returned_at <= idle_s:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure: this connection (and its generation) is unusable
            raise InvalidatePoolError(f"idle connection failed its ping: {type(exc).__name__}") from exc
