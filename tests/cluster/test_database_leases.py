"""Leases through the database (no Redis): one holder among processes, freed at once when the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from cluster.leases import DatabaseLeases
from settings import ROOT
from storage import Database
from tests.social.conftest import wait_for

HOLDER = """
import sys, time
from cluster.leases import DatabaseLeases
from storage import Database

leases = DatabaseLeases(Database(sys.argv[1]))
assert leases.acquire(sys.argv[2], "child-process", ttl=5) is not None
print("held", flush=True)
time.sleep(600)
"""


def _url(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


@pytest.mark.all_backends
def test_one_holder_at_a_time_among_database_users(db: Database, request) -> None:
    name = f"monitor-{request.node.callspec.id}-{os.getpid()}"
    a, b = DatabaseLeases(db), DatabaseLeases(Database(_url(db)))
    try:
        first = a.acquire(name, "replica-a", ttl=5)
        assert first is not None
        assert b.acquire(name, "replica-b", ttl=5) is None
        assert a.acquire(name, "replica-c", ttl=5) is None, "not even another owner of the same process"
        assert b.holder(name) == "replica-a"
        assert a.renew(first)
        a.release(first)
        assert b.holder(name) is None
        second = b.acquire(name, "replica-b", ttl=5)
        assert second is not None and second.token > first.token
        assert not a.renew(first), "a released grant is never renewed"
        a.release(first)  # releasing a grant that is gone does nothing
        assert a.holder(name) == "replica-b"
    finally:
        a.close()
        b.close()
    assert DatabaseLeases(db).holder(name) is None, "close() frees what the process held"


@pytest.mark.all_backends
def test_a_killed_holder_frees_the_lease_at_once(db: Database, request) -> None:
    name = f"run-{request.node.callspec.id}-{os.getpid()}"
    child = subprocess.Popen([sys.executable, "-c", HOLDER, _url(db), name], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    leases = DatabaseLeases(db)
    try:
        assert child.stdout.readline().strip() == "held"
        assert leases.holder(name) == "child-process"
        assert leases.acquire(name, "replica-a", ttl=5) is None
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        # No TTL to wait for: the OS (flock) or the server (session lock) freed it with the process.
        taken = wait_for(lambda: leases.acquire(name, "replica-a", ttl=5), timeout=10, interval=0.1)
        assert leases.holder(name) == "replica-a" and leases.renew(taken)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        leases.close()


def test_build_cluster_without_redis_uses_database_leases(tmp_path) -> None:
    from cluster import build_cluster
    from cluster.leases import LocalLeases
    from settings import get_settings

    on_file = Database(f"sqlite:///{tmp_path / 'app.db'}")
    assert isinstance(build_cluster(get_settings(database_url=str(on_file.url)), on_file).leases, DatabaseLeases)
    memory = Database("sqlite://")
    assert isinstance(build_cluster(get_settings(database_url="sqlite://"), memory).leases, LocalLeases)
