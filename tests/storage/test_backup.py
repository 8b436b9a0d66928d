"""`python -m storage.backup` round trips on SQLite (online backup API) and PostgreSQL (pg_dump)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from storage import ConversationRepository, CustomerRepository, Database, Message, MessageRepository
from storage.backup import BackupError, create, main, restore

pytestmark = pytest.mark.all_backends

TABLES = ("customers", "conversations", "messages", "tickets", "app_state", "alembic_version")


@pytest.fixture
def make_url(request, db_backend: str, tmp_path: Path) -> Iterator:
    """Factory of empty databases of the backend: whole databases on PostgreSQL (pg_dump works per database)."""
    made: list[str] = []

    def new(name: str) -> str:
        if db_backend == "sqlite":
            return f"sqlite:///{tmp_path / name}.db"
        url = request.getfixturevalue("postgres_server").create_database()
        made.append(url)
        return url

    yield new
    for url in made:
        request.getfixturevalue("postgres_server").drop(url)


def _fill(db: Database, n: int = 20) -> None:
    customer = CustomerRepository(db).get_or_create("Alice Martin", "+33612345678", "alice@example.fr")
    conversations = ConversationRepository(db)
    messages = MessageRepository(db)
    for i in range(n):
        conversation = conversations.create(customer_id=customer.id, context={"i": i, "accent": "é"})
        messages.add(conversation.id, "user", f"Bonjour n°{i}")
        messages.add(conversation.id, "assistant", f"Réponse {i}", meta={"intent": "facturation"})


def _raw(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


def _dump(db: Database) -> dict[str, list[tuple]]:
    with db.engine.connect() as connection:
        return {
            table: sorted(tuple(map(repr, row)) for row in connection.execute(text(f"SELECT * FROM {table}")))
            for table in TABLES
        }


def test_round_trip_keeps_every_row(make_url, tmp_path: Path) -> None:
    source = Database(make_url("source"))
    source.migrate()
    _fill(source)
    expected = _dump(source)
    assert len(expected["messages"]) == 40

    backup = create(source.engine.url, tmp_path / "backups" / "mobilia.backup")
    assert backup.stat().st_size > 0
    target_url = make_url("target")
    restore(target_url, backup)
    target = Database(target_url)
    assert _dump(target) == expected
    assert target.current_revision() == source.current_revision()
    # The restored database is usable by the app: new rows get fresh ids.
    conversation = ConversationRepository(target).create()
    MessageRepository(target).add(conversation.id, "user", "Encore là ?")
    with target.session() as session:
        assert session.scalar(select(Message).order_by(Message.id.desc()).limit(1)).content == "Encore là ?"
    source.dispose()
    target.dispose()


def test_restore_refuses_a_non_empty_target_unless_forced(make_url, tmp_path: Path, capsys) -> None:
    source = Database(make_url("source"))
    source.migrate()
    _fill(source, 3)
    backup = tmp_path / "b.backup"
    assert main(["create", "--db", _raw(source), "--out", str(backup)]) == 0

    target = Database(make_url("target"))
    target.migrate()
    _fill(target, 1)
    before = _dump(target)
    assert main(["restore", "--db", _raw(target), "--from", str(backup)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert _dump(target) == before  # untouched

    target.dispose()
    assert main(["restore", "--db", _raw(target), "--from", str(backup), "--force"]) == 0
    assert _dump(target) == _dump(source)
    source.dispose()
    target.dispose()


def test_password_is_never_on_the_command_line_or_in_logs(db_backend, make_url, tmp_path, monkeypatch, caplog) -> None:
    if db_backend != "postgresql":
        pytest.skip("PostgreSQL only")
    import subprocess

    source = Database(make_url("source"))
    source.migrate()
    url = source.engine.url
    password = url.password
    assert password
    if any(password in str(part) for part in (url.username, url.host, url.database, tmp_path)):
        pytest.skip("the test password also appears in the user, host or database name")
    calls: list[tuple[list[str], dict]] = []
    real_run = subprocess.run

    def spy(args, **kwargs):
        calls.append((list(args), kwargs.get("env") or {}))
        return real_run(args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    caplog.set_level("DEBUG")
    backup = create(url, tmp_path / "b.backup")
    restore(make_url("target"), backup)
    assert [Path(args[0]).name for args, _ in calls] == ["pg_dump", "pg_restore"]
    for args, env in calls:
        assert not any(password in arg for arg in args)
        assert env.get("PGPASSWORD") == password
    assert password not in caplog.text
    source.dispose()


def test_a_test_database_is_dropped_even_with_a_session_left_open(db_backend, request) -> None:
    """The fixture's drop ends this role's leftover sessions itself (it no longer relies on FORCE,
    which a non-superuser role cannot use while an autovacuum worker is in the database)."""
    if db_backend != "postgresql":
        pytest.skip("PostgreSQL only")
    server = request.getfixturevalue("postgres_server")
    url = server.create_database()
    left_open = Database(url)
    left_open.migrate()
    connection = left_open.engine.connect()
    connection.execute(text("SELECT 1"))
    server.drop(url)
    with server.admin.connect() as admin:
        name = left_open.engine.url.database
        assert admin.scalar(text("SELECT count(*) FROM pg_database WHERE datname = :n"), {"n": name}) == 0
    left_open.engine.pool.dispose()


def test_sqlite_backup_while_a_writer_is_busy(tmp_path: Path) -> None:
    """The online backup API gives a consistent snapshot of a WAL database being written to."""
    db = Database(f"sqlite:///{tmp_path / 'live.db'}")
    db.migrate()
    conversation = ConversationRepository(db).create()
    messages = MessageRepository(db)
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            messages.add(conversation.id, "user", f"message {i}")
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        backups = [create(db.engine.url, tmp_path / f"b{i}.db") for i in range(3)]
    finally:
        stop.set()
        writer.join()
    for backup in backups:
        copy = sqlite3.connect(backup)
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
        contents = [row[0] for row in copy.execute("SELECT content FROM messages ORDER BY id")]
        assert contents == [f"message {i}" for i in range(len(contents))]  # a prefix: no gap, no torn row
        copy.close()
    db.dispose()


def test_sqlite_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="in-memory"):
        create("sqlite://", tmp_path / "x")
    with pytest.raises(BackupError, match="no SQLite database"):
        create(f"sqlite:///{tmp_path / 'missing.db'}", tmp_path / "x")
    garbage = tmp_path / "garbage.backup"
    garbage.write_bytes(b"not a database" * 100)
    with pytest.raises(BackupError, match="SQLite"):
        restore(f"sqlite:///{tmp_path / 'new.db'}", garbage)
    with pytest.raises(BackupError, match="no backup file"):
        restore(f"sqlite:///{tmp_path / 'new.db'}", tmp_path / "nope")
