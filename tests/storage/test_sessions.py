"""Read sessions never take SQLite's write lock; write sessions take it up front."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading

import pytest
from sqlalchemy.exc import OperationalError

from storage import ConversationRepository, Database, MessageRepository

HANG_GUARD_S = 600  # only a hang reaches it: each wait below ends on its event


@pytest.fixture
def quick_lock_db(tmp_path, monkeypatch):
    """A migrated SQLite file whose connections wait only 100 ms for a lock."""
    import storage.db

    pragmas = tuple(p if "busy_timeout" not in p else "PRAGMA busy_timeout=100" for p in storage.db.SQLITE_PRAGMAS)
    monkeypatch.setattr(storage.db, "SQLITE_PRAGMAS", pragmas)
    database = Database(f"sqlite:///{tmp_path / 'app.db'}")
    database.migrate()
    yield database, tmp_path / "app.db"
    database.dispose()


def test_reads_go_on_while_another_connection_holds_the_write_lock(quick_lock_db):
    db, path = quick_lock_db
    conversations, messages = ConversationRepository(db), MessageRepository(db)
    conversation = conversations.create(channel="web")
    messages.add(conversation.id, "user", "Bonjour")
    writer = sqlite3.connect(path, timeout=0)
    writer.execute("BEGIN IMMEDIATE")  # another process is writing (the old reads queued behind it)
    try:
        assert conversations.get(conversation.id).id == conversation.id
        found, recent, _replay, _ticket, _stamp = conversations.get_with_recent(conversation.id, limit=10)
        assert found.id == conversation.id and [m.content for m in recent] == ["Bonjour"]
        assert [m.content for m in messages.list(conversation.id)] == ["Bonjour"]
        with pytest.raises(OperationalError, match="locked"):  # writes still wait for the lock, then fail
            messages.add(conversation.id, "user", "Encore")
    finally:
        writer.rollback()
        writer.close()
    assert [m.content for m in messages.list(conversation.id)] == ["Bonjour"]


def test_read_sessions_refuse_to_write(db):
    conversation = ConversationRepository(db).create(channel="web")
    with pytest.raises(RuntimeError, match="cannot write"), db.read() as session:
        session.get(type(conversation), conversation.id).status = "closed"
    assert ConversationRepository(db).get(conversation.id).status == "bot"


def test_recent_messages_are_a_bounded_window(db):
    conversations, messages = ConversationRepository(db), MessageRepository(db)
    conversation = conversations.create(channel="web")
    for n in range(7):
        messages.add(conversation.id, "user", f"m{n}")
    _found, recent, _replay, _ticket, _stamp = conversations.get_with_recent(conversation.id, limit=3)
    assert [m.content for m in recent] == ["m4", "m5", "m6"]
    assert conversations.get_with_recent("0" * 32, limit=3) == (None, [], None, None, None)


def test_a_write_connection_if_free_never_waits_for_another_writer(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'app.db'}")
    db.migrate()
    conversation = ConversationRepository(db).create(channel="web")
    try:
        with db.write_connection_if_free() as connection:  # nobody writes: a write transaction
            assert connection is not None and connection.in_transaction()
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with db.write_connection():
                holding.set()
                release.wait(HANG_GUARD_S)

        holder = threading.Thread(target=hold)
        holder.start()
        assert holding.wait(HANG_GUARD_S)
        try:
            with db.write_connection_if_free() as connection:  # a thread of this process writes
                assert connection is None
        finally:
            release.set()
            holder.join(HANG_GUARD_S)
        other = os.open(tmp_path / "app.db.write.lock", os.O_RDWR)  # another process of the host writes
        fcntl.flock(other, fcntl.LOCK_EX)
        try:
            with db.write_connection_if_free() as connection:
                assert connection is None
        finally:
            fcntl.flock(other, fcntl.LOCK_UN)
            os.close(other)
        with db.write_connection_if_free() as connection:  # both locks were given back
            assert connection is not None
        MessageRepository(db).add(conversation.id, "user", "Bonjour")  # and the usual writers go on
    finally:
        db.dispose()
