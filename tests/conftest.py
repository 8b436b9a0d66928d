"""Shared fixtures: temp databases, the embedding model and an index of the shipped KB, built once."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from settings import ROOT, RagConfig

SHIPPED_KB = ROOT / "datasets" / "raw"
EVAL_DIR = ROOT / "datasets" / "eval"
# Tiny models are constants overridable by env (no download in the default path).
EMBEDDING_MODEL = os.environ.get("MOBILIA_TEST_EMBEDDING_MODEL", "packaged")


@pytest.fixture(scope="session", autouse=True)
def _temp_dirs_allowed_in_configs(tmp_path_factory) -> Iterator[None]:
    """Training/evaluation configs may only name the project's folders and MOBILIA_ALLOWED_DIRS: add the test temp dirs."""
    import json

    allowed = [str(tmp_path_factory.getbasetemp())]
    if os.environ.get("MOBILIA_TEST_TRAIN_MODEL"):
        allowed.append(str(Path(os.environ["MOBILIA_TEST_TRAIN_MODEL"]).parent))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOBILIA_ALLOWED_DIRS", json.dumps(allowed))
        yield


@pytest.fixture(autouse=True)
def _app_log_handlers_dropped() -> Iterator[None]:
    """A command line run in-process (``main([...])``) installs the app's log handlers: drop them after the test."""
    import logging

    from logsetup import HANDLER_NAME

    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


@pytest.fixture(scope="session")
def embedder():
    """One loaded embedding model for the whole session."""
    from rag.embeddings import Embedder

    return Embedder(EMBEDDING_MODEL)


@pytest.fixture(scope="session")
def shipped_config(tmp_path_factory, embedder) -> RagConfig:
    """RagConfig whose index_dir holds a build of the shipped KB (built once per session)."""
    from rag.index import build_index

    config = RagConfig(kb_dir=SHIPPED_KB, index_dir=tmp_path_factory.mktemp("index"), embedding_model=EMBEDDING_MODEL)
    build_index(config, embedder)
    return config


@pytest.fixture(scope="session")
def engine(shipped_config, embedder):
    """Answer engine over the shipped KB."""
    from rag.answer import AnswerEngine

    return AnswerEngine(shipped_config, embedder)


# Real PostgreSQL for the tests marked `all_backends` (scripts/test.sh starts one with
# scripts/postgres.sh and exports this); unset, their PostgreSQL variants are skipped.
POSTGRES_URL = os.environ.get("MOBILIA_TEST_POSTGRES_URL", "")
BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "all_backends: run the test's `db` / `empty_db_url` on SQLite and on PostgreSQL")


def pytest_generate_tests(metafunc) -> None:
    """Run the tests marked `all_backends` once per database backend."""
    if "db_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("all_backends"):
        metafunc.parametrize("db_backend", BACKENDS)


@pytest.fixture
def db_backend() -> str:
    """The backend of `db` / `empty_db_url`: SQLite unless the test is marked `all_backends`."""
    return "sqlite"


class PostgresServer:
    """The test PostgreSQL server: a throw-away schema (or database) per test, dropped afterwards.

    A schema is selected through the connection's ``search_path`` (``?options=-csearch_path=...``),
    so the app code and Alembic see an empty database of their own; creating one costs ~1 ms.
    """

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool

        self.url = make_url(url)
        self.admin = create_engine(self.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)

    def _execute(self, sql: str) -> None:
        with self.admin.connect() as connection:
            connection.exec_driver_sql(sql)

    def create_schema(self) -> str:
        """Create an empty schema and return a URL whose connections use only it."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE SCHEMA "{name}"')
        url = self.url.update_query_dict({"options": f"-csearch_path={name}"})
        return url.render_as_string(hide_password=False)

    def create_database(self) -> str:
        """Create an empty database (for tools such as pg_dump that work per database)."""
        name = f"mobilia_test_{uuid.uuid4().hex[:12]}"
        self._execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        """Drop what ``create_schema`` or ``create_database`` made for ``url``."""
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        options = parsed.query.get("options")
        if options:
            self._execute(f'DROP SCHEMA IF EXISTS "{str(options).split("=", 1)[1]}" CASCADE')
        else:
            # Not ``WITH (FORCE)``: for a role that is not a superuser it fails when an autovacuum
            # worker happens to be in the database (InsufficientPrivilege), whereas a plain DROP
            # cancels autovacuum itself. So end this role's own leftover sessions (waiting up to
            # 10 s for each to go), then drop.
            self._execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                f" WHERE datname = '{parsed.database}' AND usename = current_user AND pid <> pg_backend_pid()"
            )
            self._execute(f'DROP DATABASE IF EXISTS "{parsed.database}"')


@pytest.fixture(scope="session")
def postgres_server():
    """The PostgreSQL server of MOBILIA_TEST_POSTGRES_URL (session-wide), or a skip."""
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured: run `bash scripts/postgres.sh` and export MOBILIA_TEST_POSTGRES_URL")
    server = PostgresServer(POSTGRES_URL)
    yield server
    server.admin.dispose()


@pytest.fixture
def empty_db_url(request, db_backend: str, tmp_path: Path):
    """URL of an empty (unmigrated) database of the test's backend, removed afterwards."""
    if db_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_schema()
    yield url
    server.drop(url)


@pytest.fixture
def db(request, db_backend: str, tmp_path: Path):
    """A migrated database: a SQLite temp file, or a fresh PostgreSQL schema (all_backends tests)."""
    from storage import Database

    if db_backend == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'test.db'}")
        database.migrate()
        yield database
        database.dispose()
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_schema()
    database = Database(url)
    database.migrate()
    yield database
    database.dispose()
    server.drop(url)


@pytest.fixture
def sql_spy(db, monkeypatch) -> Callable[[], contextlib.AbstractContextManager[list[str]]]:
    """``with sql_spy() as statements``: the first keyword of each SQL statement run on ``db`` meanwhile.

    Both ways a statement reaches the database: SQLAlchemy's execution (its engine event) and the chat
    turn's statements sent straight to the DBAPI cursor (``storage.repositories._run``).
    """
    from sqlalchemy import event

    from storage import repositories

    def first_word(sql: str) -> str:
        return sql.lstrip().split(None, 1)[0].upper()

    @contextlib.contextmanager
    def spying() -> Iterator[list[str]]:
        statements: list[str] = []
        run = repositories._DbapiStatement.run

        def spied_run(self, connection, values):
            statements.append(first_word(self.sql))
            return run(self, connection, values)

        def spy(_conn, _cursor, statement, *_args) -> None:
            statements.append(first_word(statement))

        monkeypatch.setattr(repositories._DbapiStatement, "run", spied_run)
        event.listen(db.engine, "before_cursor_execute", spy)
        try:
            yield statements
        finally:
            event.remove(db.engine, "before_cursor_execute", spy)
            monkeypatch.setattr(repositories._DbapiStatement, "run", run)

    return spying


@pytest.fixture
def chat_service(db, engine):
    """ChatService over a fresh database and the shipped KB."""
    from rag.chat import ChatService
    from tickets import TicketService

    return ChatService(db, engine, TicketService(db))


def write_mini_kb(folder: Path) -> Path:
    """A three-file KB (FAQ JSON, Markdown, CSV) for fast index tests."""
    import json

    (folder / "faq").mkdir(parents=True, exist_ok=True)
    (folder / "faq" / "mini.json").write_text(
        json.dumps(
            [
                {
                    "id": "m-1",
                    "category": "facturation",
                    "question": "Où trouver ma facture ?",
                    "variants": ["facture pdf"],
                    "answer": "Dans l'Espace Abonné, menu Mes factures.",
                    "tags": ["facture"],
                    "links": [],
                },
                {
                    "id": "m-2",
                    "category": "technique",
                    "question": "Je n'ai plus de réseau",
                    "variants": ["pas de signal"],
                    "answer": "Désactivez le mode avion puis redémarrez.",
                    "tags": ["réseau"],
                    "links": [],
                },
            ],
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    (folder / "proc.md").write_text(
        "---\ncategory: assistance\n---\n# Procédure test\n\n## Délais\nUn conseiller répond sous 4 h.\n\n"
        "## Urgence\nLes urgences sont traitées en 1 h.\n",
        encoding="utf-8",
    )
    (folder / "conv.csv").write_text(
        "id,category,question,answer\n1,forfait,Combien de data ?,Le forfait inclut 300 Go.\n", encoding="utf-8"
    )
    return folder


# A real OpenAI-compatible server for the HTTP backend and evaluation tests.
SERVER_START_S = 120


def run_in_new_loop(main: Callable[[], Any], timeout: float = 300.0) -> Any:
    """``asyncio.run(main())`` in a thread of its own, and its result (or its exception).

    A test run in the main thread may find an event loop marked running there (Playwright's sync API,
    used by the browser tests, leaves one), where ``asyncio.run`` refuses to start."""
    import asyncio
    import threading

    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = asyncio.run(main())
        except BaseException as exc:  # handed to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="test-event-loop")
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the event loop did not finish"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def free_port() -> int:
    """A free loopback port: any, or one of MOBILIA_TEST_PORTS ("7830-7839") where a shared machine asks so."""
    low, _, high = os.environ.get("MOBILIA_TEST_PORTS", "").partition("-")
    for candidate in range(int(low), int(high or low) + 1) if low.strip() else [0]:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no obstacle
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError(f"no free port in MOBILIA_TEST_PORTS={low}-{high}")


@contextlib.contextmanager
def llama_cpp_server(args: list[str], port: int, log_path: Path) -> Iterator[str]:
    """`python -m llama_cpp.server *args` (listening on loopback ``port``), logging to ``log_path``.

    Yields its /v1 base URL once /models answers; terminated on exit. A real OpenAI-compatible peer.
    """
    import httpx

    with log_path.open("w") as log:
        command = [sys.executable, "-m", "llama_cpp.server", *args]
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama.cpp server exited with {process.returncode}:\n{log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama.cpp server not ready after {SERVER_START_S} s")
            time.sleep(0.3)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory) -> Iterator[str]:
    """`python -m llama_cpp.server` serving the packaged GGUF on a loopback port; yields its /v1 base URL."""
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    from rag.llm.gguf import packaged_gguf_path

    port = free_port()
    args = ["--model", str(packaged_gguf_path()), "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", "2048", "--n_threads", "1", "--model_alias", "smollm2"]  # fmt: skip
    with llama_cpp_server(args, port, tmp_path_factory.mktemp("llama-server") / "server.log") as base_url:
        yield base_url


class RecordingLLMServer:
    """A tiny OpenAI-compatible peer on loopback recording each request's path and Authorization header.

    GET /v1/models answers a model list, POST /v1/chat/completions streams `reply` as server-sent events.
    """

    def __init__(self, reply: str = "Rendez-vous dans votre Espace Abonné.") -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[dict] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                peer.requests.append({"method": self.command, "path": self.path,
                                      "authorization": self.headers.get("Authorization"), "body": body})  # fmt: skip

            def do_GET(self) -> None:
                self._record()
                data = json.dumps({"object": "list", "data": [{"id": "peer-model", "object": "model"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                self._record()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for word in reply.split(" "):
                    chunk = {"choices": [{"delta": {"content": word + " "}}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, name="llm-peer", daemon=True)
        self.thread.start()

    @property
    def authorizations(self) -> list[str | None]:
        """The Authorization header of every request received, in order."""
        return [r["authorization"] for r in self.requests]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def llm_peer() -> Iterator[Callable[[], RecordingLLMServer]]:
    """Factory of recording OpenAI-compatible peers (stopped after the test)."""
    peers: list[RecordingLLMServer] = []

    def make() -> RecordingLLMServer:
        peers.append(RecordingLLMServer())
        return peers[-1]

    yield make
    for peer in peers:
        peer.stop()
