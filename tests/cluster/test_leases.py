"""Leases between replicas: one holder at a time, growing fencing tokens, expiry, and the keeper's takeover."""

from __future__ import annotations

import threading
import time

import pytest

from cluster.leases import LeaseKeeper, LocalLeases, RedisLeases
from cluster.redis import RedisLink
from tests.social.conftest import wait_for


def _pair(kind: str, redis_url: str | None):
    """Two lease services as two replicas see them (two Redis connections, or one process)."""
    if kind == "local":
        leases = LocalLeases()
        return leases, leases
    return RedisLeases(RedisLink(redis_url)), RedisLeases(RedisLink(redis_url))


@pytest.fixture(params=["local", "redis"])
def pair(request):
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return _pair(request.param, url)


def test_one_holder_at_a_time_and_tokens_grow(pair) -> None:
    a, b = pair
    first = a.acquire("monitor", "replica-a", ttl=5)
    assert first is not None and first.owner == "replica-a"
    assert b.acquire("monitor", "replica-b", ttl=5) is None
    assert b.holder("monitor") == "replica-a"
    assert a.renew(first)
    a.release(first)
    second = b.acquire("monitor", "replica-b", ttl=5)
    assert second is not None and second.token > first.token
    assert not a.renew(first), "a released grant is never renewed"
    a.release(first)  # releasing someone else's grant does nothing
    assert a.holder("monitor") == "replica-b"


def test_an_expired_lease_goes_to_the_next_replica(pair) -> None:
    a, b = pair
    stale = a.acquire("run", "replica-a", ttl=0.3)
    assert stale is not None
    taken = wait_for(lambda: b.acquire("run", "replica-b", ttl=5), timeout=5)
    assert taken.token > stale.token
    assert not a.renew(stale), "the replica that lost its lease cannot extend the new holder's"


def test_unreachable_redis_grants_nothing_and_says_so() -> None:
    link = RedisLink("redis://127.0.0.1:9/0", timeout=0.2)
    leases = RedisLeases(link)
    assert leases.acquire("monitor", "replica-a", ttl=5) is None
    assert link.health() == "unavailable"


class _Switchable(LocalLeases):
    """Local leases whose store can be made unreachable (renewals fail, as with Redis down)."""

    up = True

    def renew(self, lease) -> bool:
        return self.up and super().renew(lease)

    def acquire(self, name, owner, ttl):
        return super().acquire(name, owner, ttl) if self.up else None


def test_keeper_stops_the_work_when_it_cannot_renew_and_resumes_after() -> None:
    leases = _Switchable()
    running = threading.Event()
    keeper = LeaseKeeper(leases, "monitor", "replica-a", on_acquire=lambda _l: running.set(), on_lose=running.clear,
                         ttl=1.0, renew_every=0.2, retry_every=0.1)  # fmt: skip
    keeper.start()
    try:
        wait_for(running.is_set, timeout=5)
        assert keeper.guard()
        leases.up = False
        wait_for(lambda: not running.is_set(), timeout=5)
        assert not keeper.guard()
        leases.up = True
        wait_for(running.is_set, timeout=5)
    finally:
        keeper.stop()
    assert not running.is_set() and leases.holder("monitor") is None


def test_keepers_on_two_replicas_run_the_work_once_and_take_over(redis_url) -> None:
    runs: dict[str, threading.Event] = {"a": threading.Event(), "b": threading.Event()}
    keepers = {
        name: LeaseKeeper(RedisLeases(RedisLink(redis_url)), "monitor", f"replica-{name}",
                          on_acquire=lambda _l, n=name: runs[n].set(), on_lose=runs[name].clear,
                          ttl=1.0, renew_every=0.2, retry_every=0.1)
        for name in runs
    }
    for keeper in keepers.values():
        keeper.start()
    try:
        first = wait_for(lambda: next((n for n, e in runs.items() if e.is_set()), None), timeout=5)
        other = "b" if first == "a" else "a"
        time.sleep(0.5)  # several renewals: the other replica never runs the work meanwhile
        assert not runs[other].is_set()
        keepers[first].stop()  # releases: the other takes over at its next try
        wait_for(runs[other].is_set, timeout=5)
        assert not runs[first].is_set()
    finally:
        for keeper in keepers.values():
            keeper.stop()
