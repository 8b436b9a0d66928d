"""PostgreSQL restarting under a replica: no accepted message lost, nothing refused stored, recovery by itself.

A private PostgreSQL cluster (scripts/postgres.sh with its own folder and port, so no other test's
server is touched), Redis and one `python app.py`. Customers keep writing while the real server is
stopped and started again: each 200 is stored exactly once, each 503 (with Retry-After) not at all.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tests.scale.conftest import Replica, free_port, replica_env, script, wait_for

pytestmark = pytest.mark.slow
CLIENT = {"X-Forwarded-For": "198.51.100.30"}


@dataclass
class PgStack:
    database_url: str
    pg_env: dict
    replica: Replica

    def db(self):
        from storage import Database

        return Database(self.database_url)


@pytest.fixture(scope="module")
def pg_stack(tmp_path_factory, shipped_config) -> Iterator[PgStack]:
    work = tmp_path_factory.mktemp("pg-restart")
    pg_env = {"MOBILIA_PG_DIR": str(work / "pg"), "MOBILIA_PG_PORT": str(free_port())}
    redis_env = {"MOBILIA_REDIS_DIR": str(work / "redis"), "MOBILIA_REDIS_PORT": str(free_port())}
    database_url = script("postgres.sh", env=pg_env)
    replica = None
    try:
        redis_url = script("redis.sh", env=redis_env)
        port = free_port()
        env = {**replica_env(database_url, redis_url, shipped_config), "MOBILIA_PORT": str(port),
               "MOBILIA_PUBLIC_URL": f"http://127.0.0.1:{port}",
               "MOBILIA_API__RATE_LIMIT_CONVERSATION": "1000000/minute"}  # fmt: skip
        replica = Replica("a", port, env, work / "replica.log")
        replica.start()
        replica.wait_ready()
        yield PgStack(database_url, pg_env, replica)
    finally:
        if replica is not None:
            replica.stop()
        script("redis.sh", "stop", env=redis_env)
        script("postgres.sh", "destroy", env=pg_env)


def _send(replica: Replica, text: str, conversation: dict | None, n: int) -> httpx.Response:
    if conversation is None:  # opens a conversation of its own
        name = "Client " + "".join("abcdefghij"[int(d)] for d in str(n))  # names have no digits
        body = {"message": text, "user_info": {"full_name": name, "phone": f"06 12 34 {n // 100 % 100:02d} {n % 100:02d}"}}
        return httpx.post(f"{replica.url}/api/v1/chat/message", json=body, headers=CLIENT, timeout=60)
    return httpx.post(f"{replica.url}/api/v1/chat/message", timeout=60,
                      json={"message": text, "conversation_id": conversation["conversation_id"]},
                      headers={**CLIENT, "X-Conversation-Key": conversation["conversation_key"]})  # fmt: skip


def test_postgres_restart_loses_no_accepted_message_and_stores_nothing_refused(pg_stack: PgStack) -> None:
    from storage.models import Message

    replica = pg_stack.replica
    first = _send(replica, "Bonjour, comment activer ma carte SIM ?", None, 0)
    assert first.status_code == 200, first.text
    conversation = first.json()
    run = f"{time.time():.0f}"
    sent: list[tuple[str, int, str | None]] = []  # (text, status, Retry-After)
    stop = threading.Event()

    def customers():
        n = 1
        while not stop.is_set():
            text = f"Message {n} : ma ligne ne marche plus [{run}]"
            # Every third message opens a new conversation; the others continue the first one.
            response = _send(replica, text, None if n % 3 == 0 else conversation, n)
            sent.append((text, response.status_code, response.headers.get("Retry-After")))
            n += 1

    def answered(status: int, at_least: int, after: int = 0) -> bool:
        return sum(code == status for _, code, _ in sent[after:]) >= at_least

    writer = threading.Thread(target=customers, daemon=True)
    writer.start()
    try:
        wait_for(lambda: answered(200, 3), 120, what="messages accepted before the stop")
        script("postgres.sh", "stop", env=pg_stack.pg_env)
        stopped_at = len(sent)
        wait_for(lambda: answered(503, 4, stopped_at), 120, what="messages refused while PostgreSQL is down")
        health = httpx.get(f"{replica.url}/api/v1/health", timeout=30)
        assert health.status_code == 503 and health.json()["database"] == "unavailable"
        assert int(health.headers["Retry-After"]) > 0
        script("postgres.sh", "start", env=pg_stack.pg_env)  # same folder, same port, same data
        restarted_at = len(sent)
        wait_for(lambda: answered(200, 4, restarted_at), 120, what="messages accepted again, by themselves")
    finally:
        stop.set()
        writer.join(90)
        if script("postgres.sh", "status", env=pg_stack.pg_env) != "running":
            script("postgres.sh", "start", env=pg_stack.pg_env)
    assert not writer.is_alive()
    assert (replica.health() or {}).get("status") == "ok"

    statuses = Counter(code for _, code, _ in sent)
    assert set(statuses) <= {200, 503}, statuses
    assert all(retry and int(retry) > 0 for _, code, retry in sent if code == 503), "every 503 says when to retry"
    db = pg_stack.db()
    try:
        with db.read() as session:
            stored = Counter(dict(session.execute(
                select(Message.content, func.count()).where(Message.role == "user", Message.content.contains(run))
                .group_by(Message.content)).all()))  # fmt: skip
    finally:
        db.dispose()
    accepted = [text for text, code, _ in sent if code == 200]
    refused = [text for text, code, _ in sent if code == 503]
    assert [t for t in accepted if stored[t] != 1] == [], "every accepted message stored exactly once"
    assert [t for t in refused if stored[t]] == [], "no refused message stored"
    assert len(accepted) >= 7 and len(refused) >= 4, statuses


def test_the_clusters_unix_socket_reaches_the_same_database(pg_stack: PgStack) -> None:
    """``postgres.sh socket-url``: the same server and database, over its Unix socket instead of TCP."""
    from sqlalchemy import text

    from storage import Database

    socket_url = script("postgres.sh", "socket-url", env=pg_stack.pg_env)
    assert "@/" in socket_url and "?host=/" in socket_url  # in the cluster's folder (or its fallback, as root)
    checks = "SELECT inet_server_addr() IS NULL, current_database(), (SELECT count(*) FROM conversations)"
    answers = []
    for url in (socket_url, pg_stack.database_url):
        db = Database(url)
        try:
            with db.engine.connect() as connection:
                answers.append(tuple(connection.execute(text(checks)).one()))
        finally:
            db.dispose()
    assert answers[0][0] and not answers[1][0]  # the socket, then TCP
    assert answers[0][1:] == answers[1][1:]


def test_the_clusters_wal_writer_flushes_what_it_writes(pg_stack: PgStack) -> None:
    """``postgres.sh``: ``wal_writer_flush_after = 0``, so that an asynchronous commit wakes PostgreSQL 15's WAL
    writer only when a WAL page fills (not at nearly every commit); a cluster created without it gets it once."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    admin = create_engine(make_url(pg_stack.database_url).set(username="postgres"), poolclass=NullPool)
    try:
        with admin.connect() as connection:
            assert connection.execute(text("SHOW wal_writer_flush_after")).scalar_one() == "0"
            config = Path(connection.execute(text("SHOW config_file")).scalar_one())
    finally:
        admin.dispose()
    setting = "wal_writer_flush_after = 0"
    older = "\n".join(line for line in config.read_text().splitlines() if line != setting) + "\n"
    config.write_text(older)  # the file of a cluster created before the setting
    for _ in range(2):  # the running cluster gets it back, and only once however often the script runs
        script("postgres.sh", env=pg_stack.pg_env)
    assert config.read_text().splitlines().count(setting) == 1
