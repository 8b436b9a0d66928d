"""The change bus: a change published by one replica is applied by the others within seconds, Redis or not."""

from __future__ import annotations

import threading

import pytest

from cluster import build_cluster
from cluster.bus import ChangeBus, LocalBus
from cluster.redis import RedisLink
from settings import get_settings
from storage import AppStateRepository
from tests.social.conftest import wait_for


def _bus(db, url: str, name: str, poll_s: float) -> ChangeBus:
    return ChangeBus(AppStateRepository(db), RedisLink(url, timeout=0.3), replica=name, poll_s=poll_s)


def test_a_change_reaches_the_other_replica_by_redis_at_once(db, redis_url) -> None:
    # An hour between database checks: only the Redis notice can deliver the change during the test.
    a, b = _bus(db, redis_url, "a", poll_s=3600.0), _bus(db, redis_url, "b", poll_s=3600.0)
    applied_b, applied_a = threading.Event(), threading.Event()
    b.subscribe("chat_model", applied_b.set)
    a.subscribe("chat_model", applied_a.set)
    for bus in (a, b):
        bus.start()
    try:
        wait_for(lambda: redis_client(redis_url).pubsub_numsub("mobilia:changes")[0][1] == 2, timeout=5)
        version = a.publish("chat_model")
        assert applied_b.wait(60), "the notice (the database poll is an hour away) must have woken replica b"
        assert b.applied()["chat_model"] == version
        assert not applied_a.is_set(), "the publisher applied the change itself before publishing"
    finally:
        a.stop()
        b.stop()


def test_without_redis_notices_the_database_version_still_gets_there(db) -> None:
    dead = "redis://127.0.0.1:9/0"
    a, b = _bus(db, dead, "a", poll_s=0.2), _bus(db, dead, "b", poll_s=0.2)
    reloaded = threading.Event()
    b.subscribe("kb_index", reloaded.set)
    b.start()
    try:
        a.publish("kb_index")
        assert reloaded.wait(60)
    finally:
        b.stop()


def test_a_change_made_before_start_up_is_not_applied_twice(db, redis_url) -> None:
    _bus(db, redis_url, "a", poll_s=0.2).publish("chat_model")
    late = _bus(db, redis_url, "late", poll_s=0.2)
    late.subscribe("chat_model", lambda: pytest.fail("loaded at start-up already"))
    late.start()
    try:
        assert late.check() == []
    finally:
        late.stop()


def test_build_cluster_without_redis_is_one_process(db) -> None:
    cluster = build_cluster(get_settings(database_url=str(db.url)), db)
    assert isinstance(cluster.bus, LocalBus) and not isinstance(cluster.bus, ChangeBus)
    assert cluster.health() == "disabled" and not cluster.shared
    cluster.start()
    cluster.stop()


def test_build_cluster_with_redis_reports_its_health(db, redis_url) -> None:
    cluster = build_cluster(get_settings(database_url=str(db.url), redis_url=redis_url), db)
    assert cluster.shared and cluster.health() == "ok"
    assert "***" in repr(cluster.redis) and redis_url.split("@")[0].split(":")[-1] not in repr(cluster.redis)
    down = build_cluster(get_settings(database_url=str(db.url), redis_url="redis://:pw@127.0.0.1:9/0"), db)
    assert down.health() == "unavailable"


def redis_client(url: str):
    import redis

    return redis.Redis.from_url(url)
