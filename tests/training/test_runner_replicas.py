"""Two replicas' training runners on one database and one runs folder: one run at a time, followed and
cancelled from the replica that did not start it."""

from __future__ import annotations

import pytest

from cluster.leases import LocalLeases, RedisLeases
from cluster.redis import RedisLink
from cluster.runs import RunCoordinator
from storage import AppStateRepository
from tests.training.conftest import tiny_config_text
from training.runner import RunnerBusy, TrainingRunner


@pytest.fixture(params=["local", "redis"])
def replicas(request, tmp_path, db):
    """Runners of replicas 'a' and 'b' (leases in one process' memory, or in the test Redis)."""
    if request.param == "redis":
        from tests.cluster.conftest import REDIS_URL

        if not REDIS_URL:
            pytest.skip("Redis not configured: run `bash scripts/redis.sh` and export MOBILIA_TEST_REDIS_URL")
        import redis

        redis.Redis.from_url(REDIS_URL).delete("mobilia:lease:run.training")
        leases = {n: RedisLeases(RedisLink(REDIS_URL)) for n in "ab"}
    else:
        shared = LocalLeases()
        leases = {n: shared for n in "ab"}
    state = AppStateRepository(db)
    return {n: TrainingRunner(runs_dir=tmp_path / "runs", coordinator=RunCoordinator(
        "training", leases[n], state, f"replica-{n}", ttl=3, renew_every=0.5)) for n in "ab"}  # fmt: skip


def test_one_run_across_replicas_followed_and_cancelled_from_the_other(replicas, tiny_model, tiny_data, tmp_path):
    a, b = replicas["a"], replicas["b"]
    text = tiny_config_text(tiny_model, *tiny_data, runs_dir=tmp_path, max_steps=100000)
    run_dir = a.start(text)
    assert b.running and not b.running_here
    with pytest.raises(RunnerBusy, match="autre instance"):
        b.start(text)
    seen = None
    for progress in b.stream(interval=0.5, max_seconds=120):  # replica b follows a's run from the shared files
        seen = progress
        if progress.losses:
            break
    assert seen is not None and seen.run == run_dir.name and seen.state == "running" and seen.losses
    assert [r["run"] for r in b.list_runs()] == [run_dir.name] and b.list_runs()[0]["state"] == "running"
    assert b.cancel(timeout=10) is True  # carried out by replica a, which owns the subprocess
    assert not a.running_here and not b.running
    assert a.progress().state == "cancelled" and b.progress().state == "cancelled"
    second = b.start(tiny_config_text(tiny_model, *tiny_data, runs_dir=tmp_path, max_steps=1))  # the lease is free
    assert second != run_dir
    assert b.cancel(timeout=10) is True
