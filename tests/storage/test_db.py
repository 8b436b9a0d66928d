"""Database handle and migrations on SQLite files, in-memory SQLite and a real PostgreSQL.

Tests taking `empty_db` / `empty_db_url` run on both backends (tests/conftest.py).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from storage import Base, Customer, Database, Message
from storage.db import MIGRATIONS_DIR

HEAD = "0012"  # latest revision in storage/migrations/versions
TABLES = {
    "customers",
    "conversations",
    "messages",
    "feedback",
    "tickets",
    "ticket_events",
    "contact_tokens",
    "mastodon_posts",
    "staff_users",
    "app_state",
}


pytestmark = pytest.mark.all_backends


@pytest.fixture
def file_db(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'app.db'}")
    yield db
    db.dispose()


@pytest.fixture
def empty_db(empty_db_url: str) -> Iterator[Database]:
    """An unmigrated database of each backend."""
    db = Database(empty_db_url)
    yield db
    db.dispose()


def test_engine_is_created_lazily(tmp_path: Path) -> None:
    path = tmp_path / "lazy" / "app.db"
    db = Database(f"sqlite:///{path}")
    assert not path.parent.exists()
    db.migrate()
    assert path.exists()
    db.dispose()


def test_migrate_is_idempotent(empty_db: Database) -> None:
    assert empty_db.current_revision() is None
    empty_db.migrate()
    empty_db.migrate()
    assert empty_db.current_revision() == HEAD
    assert set(inspect(empty_db.engine).get_table_names()) >= TABLES


def test_env_py_opens_its_own_connection_from_the_url(empty_db_url: str) -> None:
    url = empty_db_url
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser interpolation
    command.upgrade(config, "head")
    db = Database(url)
    assert db.current_revision() == HEAD
    db.dispose()


BROKEN_MIGRATION = f"""
import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))
    raise RuntimeError("migration failed halfway")


def downgrade():
    op.drop_table("half_done")
"""


def test_failed_migration_rolls_back_its_ddl(tmp_path: Path, empty_db_url: str) -> None:
    scripts = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9999_broken.py").write_text(BROKEN_MIGRATION)
    db = Database(empty_db_url)
    config = Config()
    config.set_main_option("script_location", str(scripts))

    with db.engine.connect() as connection, pytest.raises(RuntimeError, match="halfway"):
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    assert db.current_revision() == HEAD  # earlier revisions committed on their own
    tables = set(inspect(db.engine).get_table_names())
    assert "half_done" not in tables
    assert tables >= TABLES
    db.dispose()


def test_sqlite_pragmas_on_every_connection(file_db: Database) -> None:
    file_db.migrate()
    with file_db.engine.connect() as connection:
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA foreign_keys").scalar() == 1
        assert pragma("PRAGMA busy_timeout").scalar() == 5000
        assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_a_sqlite_file_hands_out_the_connection_returned_last(file_db: Database) -> None:
    """Its page cache is the warm one: another connection's cache went stale with this one's writes."""
    file_db.migrate()
    with file_db.read_connection() as first, file_db.read_connection() as second:
        raw_first, raw_second = first.connection.dbapi_connection, second.connection.dbapi_connection
        assert raw_first is not raw_second
    # ``second`` went back to the pool first, ``first`` last.
    with file_db.write_connection() as connection:
        assert connection.connection.dbapi_connection is raw_first
    with file_db.read_connection() as connection:
        assert connection.connection.dbapi_connection is raw_first


def test_migration_matches_models(empty_db: Database) -> None:
    empty_db.migrate()
    with empty_db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def _constraint_names(db: Database) -> dict[str, set[str]]:
    """Collect the names of every check, unique, foreign-key constraint and index per table."""
    inspector = inspect(db.engine)
    names: dict[str, set[str]] = {}
    for table in TABLES:
        found = {c["name"] for c in inspector.get_check_constraints(table)}
        found |= {c["name"] for c in inspector.get_unique_constraints(table)}
        found |= {c["name"] for c in inspector.get_foreign_keys(table)}
        found |= {i["name"] for i in inspector.get_indexes(table)}
        names[table] = found
    return names


def test_migration_constraint_names_match_models(request, db_backend: str, empty_db: Database) -> None:
    empty_db.migrate()
    server = request.getfixturevalue("postgres_server") if db_backend == "postgresql" else None
    reference_url = server.create_schema() if server else "sqlite://"
    reference = Database(reference_url)
    try:
        Base.metadata.create_all(reference.engine)
        migrated = _constraint_names(empty_db)
        assert migrated == _constraint_names(reference)
        assert "ck_conversations_channel" in migrated["conversations"]
        assert "uq_tickets_live_conversation" in migrated["tickets"]
    finally:
        reference.dispose()
        if server:
            server.drop(reference_url)


def test_downgrade_to_base_and_back(empty_db: Database) -> None:
    empty_db.migrate()
    empty_db.downgrade("base")
    assert empty_db.current_revision() is None
    assert not TABLES & set(inspect(empty_db.engine).get_table_names())
    empty_db.migrate()
    assert set(inspect(empty_db.engine).get_table_names()) >= TABLES


def test_conversation_contact_migration_fills_existing_conversations(empty_db: Database) -> None:
    """0006 copies each customer's contact onto its conversations, and goes back down cleanly."""
    empty_db.migrate("0005")
    now = datetime(2026, 3, 1, tzinfo=UTC)
    with empty_db.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO customers (id, full_name, phone, email, created_at) VALUES (1, 'Alice Martin', "
                 "'+33612345678', 'alice@example.fr', :now)"),
            {"now": now},
        )
        for cid, customer in (("a" * 32, 1), ("b" * 32, None)):
            connection.execute(
                text("INSERT INTO conversations (id, customer_id, channel, status, created_at, updated_at) "
                     "VALUES (:id, :customer, 'web', 'bot', :now, :now)"),
                {"id": cid, "customer": customer, "now": now},
            )
    empty_db.migrate("0006")
    with empty_db.engine.connect() as connection:
        result = connection.execute(text("SELECT id, contact_name, contact_phone, contact_email FROM conversations"))
        rows = {r[0]: tuple(r[1:]) for r in result}
    assert rows == {"a" * 32: ("Alice Martin", "+33612345678", "alice@example.fr"), "b" * 32: (None, None, None)}
    empty_db.downgrade("0005")
    columns = {c["name"] for c in inspect(empty_db.engine).get_columns("conversations")}
    assert not {"contact_name", "contact_phone", "contact_email"} & columns
    empty_db.migrate()
    assert empty_db.current_revision() == HEAD


def test_in_memory_database_is_shared_by_sessions_and_threads() -> None:
    db = Database("sqlite://")
    db.migrate()
    with db.session() as session:
        session.add(Customer(full_name="Alice Martin", phone="+33612345678"))

    found: list[str] = []

    def read() -> None:
        with db.session() as session:
            found.extend(session.scalars(select(Customer.phone)))

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    assert found == ["+33612345678"]
    db.dispose()


def test_session_rolls_back_on_error() -> None:
    db = Database("sqlite://")
    db.migrate()
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(Customer(full_name="Alice Martin", phone="+33612345678"))
        session.flush()
        raise RuntimeError("boom")
    with db.session() as session:
        assert session.scalars(select(Customer)).all() == []


def test_foreign_keys_are_enforced(empty_db: Database) -> None:
    empty_db.migrate()
    with pytest.raises(IntegrityError), empty_db.session() as session:
        session.add(Message(conversation_id="0" * 32, role="user", content="Bonjour"))


def test_check_constraints_are_enforced(empty_db: Database) -> None:
    empty_db.migrate()
    with pytest.raises(IntegrityError), empty_db.session() as session:
        session.execute(
            text(
                "INSERT INTO conversations (id, channel, status, created_at, updated_at) "
                "VALUES ('a', 'fax', 'bot', '2025-01-01', '2025-01-01')"
            )
        )


def test_naive_datetimes_are_refused() -> None:
    db = Database("sqlite://")
    db.migrate()
    with pytest.raises(Exception, match="naive datetime"), db.session() as session:
        session.add(Customer(full_name="A B", phone="+33612345678", created_at=datetime(2025, 1, 1)))


def test_url_hides_password_and_connects_nowhere() -> None:
    db = Database("postgresql+psycopg://mobilia:s3cret@db.example:5432/mobilia")
    assert "s3cret" not in db.url
    assert "s3cret" not in repr(db)
    assert db.url == "postgresql+psycopg://mobilia:***@db.example:5432/mobilia"
    assert db._engine is None


def test_live_ticket_partial_unique_index(db: Database) -> None:
    """At most one live ticket per conversation; closed ones do not count (partial unique index)."""
    now = "2025-01-01 00:00:00+00"
    insert = (
        "INSERT INTO tickets (conversation_id, category, priority, status, summary, created_at, updated_at, "
        "sla_due_at) VALUES ('c', 'x', 'LOW', :status, 's', :now, :now, :now)"
    )
    with db.session() as session:
        session.execute(
            text(
                "INSERT INTO conversations (id, channel, status, created_at, updated_at) VALUES ('c', 'web', 'bot', :now, :now)"
            ),
            {"now": now},
        )
        session.execute(text(insert), {"status": "CLOSED", "now": now})
        session.execute(text(insert), {"status": "CLOSED", "now": now})
        session.execute(text(insert), {"status": "OPEN", "now": now})
    with pytest.raises(IntegrityError), db.session() as session:
        session.execute(text(insert), {"status": "IN_PROGRESS", "now": now})


def test_json_and_aware_timestamps_round_trip(db: Database) -> None:
    from storage import AppStateRepository, ConversationRepository

    conversation = ConversationRepository(db).create()
    ConversationRepository(db).update_context(conversation.id, {"intent": "facturation", "n": [1, 2], "é": None})
    AppStateRepository(db).set("k", {"nested": {"ok": True}, "list": ["a"]})
    stored = ConversationRepository(db).get(conversation.id)
    assert stored is not None and stored.context == {"intent": "facturation", "n": [1, 2], "é": None}
    assert AppStateRepository(db).get("k") == {"nested": {"ok": True}, "list": ["a"]}
    assert stored.created_at.tzinfo is UTC and stored.created_at.utcoffset().total_seconds() == 0


def test_postgresql_column_types(request, db_backend: str, db: Database) -> None:
    if db_backend != "postgresql":
        pytest.skip("PostgreSQL types only")
    with db.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND column_name LIKE '%\\_at'"
            )
        ).all()
        assert rows and {r.data_type for r in rows} == {"timestamp with time zone"}
        kinds = dict(
            connection.execute(
                text(
                    "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND column_name IN ('context', 'meta', 'value')"
                )
            ).all()
        )
        assert set(kinds.values()) == {"json"}
        predicate = connection.execute(
            text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_tickets_live_conversation' "
                "AND schemaname = current_schema()"
            )
        ).scalar_one()
        assert "UNIQUE" in predicate and "WHERE" in predicate and "CLOSED" in predicate


# --- PostgreSQL connections: a ping only after idling, reads without a transaction -------------


@pytest.fixture
def pg_url(db_backend: str, db: Database) -> str:
    """The URL of the test's migrated PostgreSQL schema (SQLite has no server connection to lose)."""
    if db_backend != "postgresql":
        pytest.skip("PostgreSQL connections only")
    return db.engine.url.render_as_string(hide_password=False)


def _backend_pid(db: Database) -> int:
    with db.read() as session:
        return session.scalar(text("SELECT pg_backend_pid()"))


def _terminate(admin: Database, pid: int) -> None:
    """End one server process, as a PostgreSQL restart does; PostgreSQL itself waits until it is gone
    (the timeout, in ms, only guards against a hang)."""
    with admin.write() as session:
        assert session.scalar(text("SELECT pg_terminate_backend(:pid, 30000)"), {"pid": pid}), f"backend {pid} still alive"


def _count_pings(db: Database) -> list[int]:
    pings: list[int] = []
    real = db.engine.dialect.do_ping

    def counting(dbapi_connection) -> bool:
        pings.append(1)
        return real(dbapi_connection)

    db.engine.dialect.do_ping = counting  # type: ignore[method-assign]
    return pings


def test_busy_connections_are_not_pinged_idle_ones_are(pg_url: str) -> None:
    busy = Database(pg_url, ping_after_idle_s=60.0, pool_size=1, max_overflow=0)
    idle = Database(pg_url, ping_after_idle_s=0.0, pool_size=1, max_overflow=0)
    try:
        busy_pings, idle_pings = _count_pings(busy), _count_pings(idle)
        for _ in range(5):
            _backend_pid(busy)
            _backend_pid(idle)
        assert busy_pings == []  # pool_pre_ping used to cost one round trip per session
        assert len(idle_pings) == 4  # every checkout but the first (a new connection)
    finally:
        busy.dispose()
        idle.dispose()


def test_a_connection_closed_by_the_server_while_idle_is_replaced_before_use(pg_url: str, db: Database) -> None:
    pooled = Database(pg_url, ping_after_idle_s=0.0, pool_size=1, max_overflow=0)
    try:
        pid = _backend_pid(pooled)
        _terminate(db, pid)
        with pooled.write() as session:  # the ping fails on checkout: a fresh connection, no error
            assert session.scalar(text("SELECT pg_backend_pid()")) != pid
            session.add(Customer(full_name="Alice Martin", phone="+33612345678"))
        with pooled.read() as session:
            assert session.scalars(select(Customer.full_name)).all() == ["Alice Martin"]
    finally:
        pooled.dispose()


def test_a_connection_lost_while_in_use_fails_once_then_the_pool_reconnects(pg_url: str, db: Database) -> None:
    """Within the idle delay nothing is checked: the statement fails (the API answers 503), the next one works."""
    from sqlalchemy.exc import OperationalError

    pooled = Database(pg_url, ping_after_idle_s=60.0, pool_size=2, max_overflow=0)
    try:
        with pooled.read() as first, pooled.read() as second:  # two pooled connections, both lost below
            pids = [s.scalar(text("SELECT pg_backend_pid()")) for s in (first, second)]
        for pid in pids:
            _terminate(db, pid)
        with pytest.raises(OperationalError) as failed, pooled.read() as session:
            session.execute(text("SELECT 1"))
        assert failed.value.connection_invalidated
        assert _backend_pid(pooled) not in pids  # the whole pool was invalidated: no second failure
        assert _backend_pid(pooled) not in pids
    finally:
        pooled.dispose()


def test_postgresql_reads_open_no_transaction_and_writes_still_roll_back(pg_url: str) -> None:
    from psycopg.pq import TransactionStatus

    pooled = Database(pg_url, pool_size=1, max_overflow=0)  # one connection: reads and writes share it
    try:
        with pooled.read() as session:
            session.scalar(text("SELECT 1"))
            assert session.connection().connection.dbapi_connection.info.transaction_status == TransactionStatus.IDLE
        with pytest.raises(RuntimeError), pooled.write() as session:
            session.add(Customer(full_name="Alice Martin", phone="+33612345678"))
            session.flush()
            assert session.connection().connection.dbapi_connection.info.transaction_status == TransactionStatus.INTRANS
            raise RuntimeError("boom")
        with pooled.read() as session:
            assert session.scalars(select(Customer)).all() == []
        with pytest.raises(RuntimeError, match="cannot write"), pooled.read() as session:
            session.add(Customer(full_name="Bruno Petit", phone="+33798765432"))
        with pooled.read() as session:
            assert session.scalars(select(Customer)).all() == []
    finally:
        pooled.dispose()
