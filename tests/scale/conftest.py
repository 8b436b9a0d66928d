"""The scale-out stack on loopback: PostgreSQL, Redis, two `python app.py` replicas, nginx, a Mastodon peer.

Real processes started by the project's own scripts (scripts/postgres.sh, scripts/redis.sh,
scripts/nginx.sh with deploy/nginx.conf) and the real app; one stack per test module. Ports come
from the OS, or from MOBILIA_SCALE_PORT_BASE upwards when set (a fixed range on a shared machine).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bench.mastodon_peer import SUPPORT, MastodonPeer
from settings import ROOT
from tests.api.conftest import Receiver

PASSWORD = "correct horse battery staple"
SECRET = "scale-test-secret-" + "s" * 40
HOOK_SECRET = "whsec-scale-0123456789"
STARTUP_TIMEOUT_S = 240
_BASE = int(os.environ.get("MOBILIA_SCALE_PORT_BASE", "0"))
_ports = itertools.count(_BASE) if _BASE else None


def free_port() -> int:
    """A port nobody listens on: the next of MOBILIA_SCALE_PORT_BASE's range, else one from the OS."""
    if _ports is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    for port in _ports:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.2, what: str = "") -> object:
    """Poll until ``predicate()`` is truthy (returned); fail after ``timeout`` seconds (a hang guard)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout} s: {what}")


def script(name: str, *args: str, env: dict | None = None) -> str:
    """Run scripts/<name> and return its stdout (the URL it prints)."""
    done = subprocess.run(["bash", f"scripts/{name}", *args], cwd=ROOT, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, f"{name} {args}: {done.stderr[-2000:]}"
    return done.stdout.strip()


@dataclass
class Replica:
    """One `python app.py` process of the stack."""

    name: str
    port: int
    env: dict
    log_path: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)  # fmt: skip

    def health(self) -> dict | None:
        response = httpx.get(f"{self.url}/api/v1/health", timeout=5)
        return response.json() if response.status_code == 200 else None

    def wait_ready(self) -> None:
        """Health 200 and the knowledge base loaded (the first answers are real ones)."""

        def ready():
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.process.returncode}:\n{self.log()[-4000:]}")
            status = httpx.get(f"{self.url}/api/v1/model-status", timeout=5)
            return self.health() and status.status_code == 200 and status.json().get("status") == "ready"

        wait_for(ready, STARTUP_TIMEOUT_S, interval=0.5, what=f"{self.name} ready")

    def kill9(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@dataclass
class Stack:
    """Everything a scale test talks to."""

    database_url: str
    redis_url: str
    redis_env: dict
    balancer: str
    replicas: list[Replica]
    peer: MastodonPeer
    receiver: Receiver
    tokens: dict[str, dict] = field(default_factory=dict)  # replica name -> admin bearer header

    def db(self):
        from storage import Database

        return Database(self.database_url)

    def redis(self):
        import redis

        return redis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=2)

    def monitor_holder(self) -> Replica | None:
        """The replica holding the social-monitor lease (by the pid in the lease's owner)."""
        value = self.redis().get("mobilia:lease:social-monitor")
        if not value:
            return None
        pid = int(value.split(":")[1])
        return next((r for r in self.replicas if r.process is not None and r.process.pid == pid), None)


def replica_env(database_url: str, redis_url: str, shipped_config) -> dict[str, str]:
    """What every replica of a test stack shares: the database, Redis, the secret, the shipped KB, open limits."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MOBILIA_", "DATABASE_URL"))},
        "DATABASE_URL": database_url,
        "MOBILIA_REDIS_URL": redis_url,
        "MOBILIA_SECRET_KEY": SECRET,
        "MOBILIA_HOST": "127.0.0.1",
        "MOBILIA_TRUSTED_PROXIES": "127.0.0.1",
        "MOBILIA_RAG__INDEX_DIR": str(shipped_config.index_dir),
        "MOBILIA_RAG__KB_DIR": str(shipped_config.kb_dir),
        "MOBILIA_RAG__EMBEDDING_MODEL": shipped_config.embedding_model,
        "MOBILIA_API__RATE_LIMIT_IP": "1000000/minute",
        "MOBILIA_API__RATE_LIMIT_LOGIN": "10/minute",
        "MOBILIA_API__RATE_LIMIT_LOGIN_ACCOUNT": "1000000/minute",
        "MOBILIA_API__RATE_LIMIT_CONVERSATIONS_CLIENT": "1000000/hour",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def _postgres_url(request) -> Iterator[str]:
    """A fresh database on the test PostgreSQL (MOBILIA_TEST_POSTGRES_URL, else scripts/postgres.sh)."""
    from tests.conftest import POSTGRES_URL, PostgresServer

    server = PostgresServer(POSTGRES_URL or script("postgres.sh"))
    url = server.create_database()
    try:
        yield url
    finally:
        server.drop(url)
        server.admin.dispose()


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory, shipped_config) -> Iterator[Stack]:
    """PostgreSQL + Redis + 2 replicas (started together on an empty database) + nginx + Mastodon peer."""
    work = tmp_path_factory.mktemp("scale")
    pg = _postgres_url(request)
    database_url = next(pg)
    redis_env = {"MOBILIA_REDIS_DIR": str(work / "redis"), "MOBILIA_REDIS_PORT": str(free_port())}
    redis_url = script("redis.sh", env=redis_env)
    peer = MastodonPeer(work / "mastodon.db", port=free_port()).start()
    receiver = Receiver()
    receiver.thread.start()
    base_env = {
        **replica_env(database_url, redis_url, shipped_config),
        "MOBILIA_MASTODON__INSTANCE_URL": peer.base_url,
        "MOBILIA_MASTODON__ACCESS_TOKEN": f"{SUPPORT}_token",
        "MOBILIA_MASTODON__REPLY_MODE": "auto",
        "MOBILIA_MASTODON__BACKOFF_INITIAL": "0.2",
        "MOBILIA_MASTODON__BACKOFF_MAX": "1",
        "MOBILIA_MASTODON__REQUEST_TIMEOUT": "5",
        "MOBILIA_MASTODON__STREAM_TIMEOUT": "5",
        "MOBILIA_API__WEBHOOK_URLS": json.dumps([receiver.url]),
        "MOBILIA_API__WEBHOOK_SECRET": HOOK_SECRET,
    }
    replicas = []
    for name in ("a", "b"):
        port = free_port()
        env = {**base_env, "MOBILIA_PORT": str(port), "MOBILIA_PUBLIC_URL": f"http://127.0.0.1:{port}"}
        replicas.append(Replica(name, port, env, work / f"replica-{name}.log"))
    nginx_env = {"MOBILIA_NGINX_DIR": str(work / "nginx")}
    try:
        for replica in replicas:  # together, on the empty database: the migration lock makes one migrate it
            replica.start()
        for replica in replicas:
            replica.wait_ready()
        balancer = script("nginx.sh", "start", str(free_port()), *(f"127.0.0.1:{r.port}" for r in replicas),
                          env=nginx_env)  # fmt: skip
        from storage import Database
        from tickets.users import StaffService

        db = Database(database_url)
        StaffService(db).create_user("admin1", PASSWORD, "admin")
        db.dispose()
        stack = Stack(database_url, redis_url, redis_env, balancer, replicas, peer, receiver)
        for replica in replicas:
            login = httpx.post(f"{replica.url}/api/v1/auth/login", json={"username": "admin1", "password": PASSWORD},
                               headers={"X-Forwarded-For": "198.51.100.1"}, timeout=10)  # fmt: skip
            assert login.status_code == 200, login.text
            stack.tokens[replica.name] = {"Authorization": f"Bearer {login.json()['access_token']}"}
        yield stack
    finally:
        script("nginx.sh", "stop", env=nginx_env)
        for replica in replicas:
            replica.stop()
        peer.stop()
        receiver.server.shutdown()
        receiver.server.server_close()
        script("redis.sh", "stop", env=redis_env)
        next(pg, None)
