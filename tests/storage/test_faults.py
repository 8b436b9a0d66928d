"""Faults: a locked SQLite database, a process killed (-9) while writing messages or building the index."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

import storage.db
from settings import ROOT
from storage import ConversationRepository, Database, Message, MessageRepository
from storage.repositories import append_messages
from tests.conftest import EMBEDDING_MODEL, write_mini_kb

HANG_GUARD_S = 600  # only a hang reaches it: a busy machine is slow, never this slow


@pytest.fixture
def sqlite_db(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path / 'app.db'}")
    db.migrate()
    yield db
    db.dispose()


def _hold_write_lock(
    path: Path,
    seconds: float,
    started: threading.Event,
    write: str | None = None,
    release: threading.Event | None = None,
    committed: list[float] | None = None,
) -> None:
    """Another connection takes the write lock (BEGIN IMMEDIATE), optionally writes, then commits.

    It holds the lock `seconds`, or until `release` is set when given; `committed` gets the commit time.
    """
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    if write:
        connection.execute(write)
    started.set()
    if release is not None:
        release.wait(HANG_GUARD_S)
    else:
        time.sleep(seconds)
    connection.execute("COMMIT")
    if committed is not None:
        committed.append(time.perf_counter())
    connection.close()


def _messages(db: Database, conversation_id: str) -> list[str]:
    return [m.content for m in MessageRepository(db).list(conversation_id)]


def test_locked_database_is_waited_for_then_the_write_succeeds(sqlite_db: Database, tmp_path: Path) -> None:
    conversation = ConversationRepository(sqlite_db).create()
    started, committed = threading.Event(), []
    holder = threading.Thread(
        target=_hold_write_lock, args=(tmp_path / "app.db", 0.8, started), kwargs={"committed": committed}
    )
    holder.start()
    assert started.wait(HANG_GUARD_S)
    MessageRepository(sqlite_db).add(conversation.id, "user", "Bonjour, ma ligne est coupée")
    finished = time.perf_counter()
    holder.join()
    assert committed and finished >= committed[0]  # retried by busy_timeout until the other writer committed
    assert _messages(sqlite_db, conversation.id) == ["Bonjour, ma ligne est coupée"]


def test_lock_held_too_long_raises_a_clear_error_and_loses_nothing(
    sqlite_db: Database, tmp_path: Path, monkeypatch
) -> None:
    # A 300 ms busy timeout instead of 5 s keeps the test short; the behaviour is the same.
    pragmas = tuple(p.replace("busy_timeout=5000", "busy_timeout=300") for p in storage.db.SQLITE_PRAGMAS)
    monkeypatch.setattr(storage.db, "SQLITE_PRAGMAS", pragmas)
    sqlite_db.dispose()
    repo = MessageRepository(sqlite_db)
    conversation = ConversationRepository(sqlite_db).create()
    repo.add(conversation.id, "user", "premier message")

    started, release = threading.Event(), threading.Event()
    holder = threading.Thread(
        target=_hold_write_lock, args=(tmp_path / "app.db", 0, started), kwargs={"release": release}
    )
    holder.start()
    assert started.wait(HANG_GUARD_S)
    begin = time.perf_counter()
    with pytest.raises(OperationalError, match="database is locked"):  # while the lock is still held
        repo.add(conversation.id, "user", "second message")
    assert time.perf_counter() - begin >= 0.25  # waited busy_timeout, then gave up
    release.set()
    holder.join()

    # Nothing half-written; the caller still has the message and can store it once the lock is gone.
    assert _messages(sqlite_db, conversation.id) == ["premier message"]
    repo.add(conversation.id, "user", "second message")
    assert _messages(sqlite_db, conversation.id) == ["premier message", "second message"]


def test_concurrent_writers_queue_instead_of_failing(sqlite_db: Database) -> None:
    """Sessions start with BEGIN IMMEDIATE: read-then-write transactions wait for each other (busy_timeout)."""
    conversations = [ConversationRepository(sqlite_db).create().id for _ in range(4)]
    errors: list[BaseException] = []

    def write(conversation_id: str) -> None:
        # A separate Database per thread = separate connections, like two processes sharing the file.
        own = Database(sqlite_db.engine.url)
        try:
            for i in range(25):
                MessageRepository(own).add(conversation_id, "user", f"message {i}")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=write, args=(c,)) for c in conversations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for conversation_id in conversations:
        assert _messages(sqlite_db, conversation_id) == [f"message {i}" for i in range(25)]


def test_writers_of_two_processes_queue_on_the_host_file_lock(sqlite_db: Database, monkeypatch) -> None:
    """Replicas sharing a SQLite file wait for each other on a file lock, not in SQLite's sleeping busy handler."""
    other = Database(sqlite_db.engine.url)  # its own lock file descriptor, as another process has
    conversation = ConversationRepository(sqlite_db).create()
    polling, order = threading.Event(), []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:  # the waiting writer polls the file lock: say so, then really sleep
        polling.set()
        real_sleep(seconds)

    monkeypatch.setattr(storage.db.time, "sleep", sleep)

    def write() -> None:
        with sqlite_db.write() as session:
            order.append("entered")
            session.connection()  # BEGIN IMMEDIATE right away: the other writer is gone

    try:
        host = other._host_writer_lock()
        assert host.acquire(0)  # the other process' writer is in front
        writer = threading.Thread(target=write)
        writer.start()
        assert polling.wait(HANG_GUARD_S)  # this one waits for it
        order.append("released")
        host.release()
        writer.join(HANG_GUARD_S)
        assert order == ["released", "entered"]
        with sqlite_db.write_connection() as connection:
            connection.exec_driver_sql("SELECT 1")
            assert not other._host_writer_lock().acquire(0)  # held until the write ends
        assert other._host_writer_lock().acquire(0)
        other._host_writer_lock().release()
        MessageRepository(sqlite_db).add(conversation.id, "user", "après")
        assert _messages(sqlite_db, conversation.id) == ["après"]
    finally:
        other.dispose()


def test_a_core_write_commits_whole_or_not_at_all(sqlite_db: Database) -> None:
    conversation = ConversationRepository(sqlite_db).create()
    with pytest.raises(RuntimeError):
        with sqlite_db.write_connection() as connection:
            append_messages(connection, conversation.id, [{"role": "user", "content": "perdu"}])
            raise RuntimeError("the turn failed")
    with sqlite_db.write_connection() as connection:
        append_messages(connection, conversation.id, [{"role": "user", "content": "gardé"}])
    assert _messages(sqlite_db, conversation.id) == ["gardé"]


WRITER = """
import sys
from storage import ConversationRepository, Database, MessageRepository

db = Database(sys.argv[1])
conversation = ConversationRepository(db).create()
print(conversation.id, flush=True)
messages = MessageRepository(db)
i = 0
while True:
    message = messages.add(conversation.id, "user", f"message {i}", meta={"i": i})
    print(message.id, flush=True)  # printed only once committed
    i += 1
"""


@pytest.mark.all_backends
def test_kill_9_while_writing_keeps_every_committed_message(db: Database, tmp_path: Path) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    for round_ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, url],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        conversation_id = child.stdout.readline().strip()
        committed = [int(child.stdout.readline()) for _ in range(30 + 20 * round_)]
        os.kill(child.pid, signal.SIGKILL)
        committed += [int(line) for line in child.stdout.read().split()]
        assert child.wait(timeout=30) == -signal.SIGKILL

        # The app restarts on the same database: sound, with every acknowledged message, still writable.
        restarted = Database(url)
        if restarted.is_sqlite:
            with restarted.engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
                assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        with restarted.session() as session:
            stored = set(session.scalars(select(Message.id).where(Message.conversation_id == conversation_id)))
            assert set(committed) <= stored
            assert len(stored) - len(committed) <= 1  # at most the one committed just before the kill
        MessageRepository(restarted).add(conversation_id, "user", "après redémarrage")
        with restarted.session() as session:
            assert session.scalar(select(func.count()).select_from(Message)) >= len(committed) + 1
        restarted.dispose()


@pytest.mark.slow
def test_kill_9_during_ingest_leaves_the_previous_index_loadable(tmp_path: Path, embedder) -> None:
    from rag.index import KnowledgeIndex, build_index, current_build
    from settings import RagConfig

    kb = write_mini_kb(tmp_path / "kb")
    index_dir = tmp_path / "index"
    first = build_index(RagConfig(kb_dir=kb, index_dir=index_dir, embedding_model=EMBEDDING_MODEL), embedder)
    (kb / "more.md").write_text("# Portabilité\n\n## RIO\nAppelez le 3179 pour obtenir votre RIO.\n", encoding="utf-8")
    env = {**os.environ, "MOBILIA_RAG__EMBEDDING_MODEL": EMBEDDING_MODEL, "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "rag", "ingest", "--rebuild", "--kb-dir", str(kb), "--index-dir", str(index_dir)]
    builds = index_dir / "builds"
    killed_mid_write = 0
    for delay in (0.3, None, None, None):
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        if delay is not None:
            time.sleep(delay)  # while Python and the model load
        else:
            # Kill as soon as a temp build folder appears: the index files are being written.
            while child.poll() is None and time.monotonic() < deadline:
                if any(p.name.startswith(".") for p in builds.iterdir()):
                    killed_mid_write += 1
                    break
                time.sleep(0.001)
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)

        active = current_build(index_dir)
        assert active is not None
        index = KnowledgeIndex.load(index_dir)
        assert len(index.entries) in (first.entries, first.entries + 1)  # the old build, or the complete new one
        assert (active / "manifest.json").exists()
    assert killed_mid_write >= 1 or current_build(index_dir) != first.path
