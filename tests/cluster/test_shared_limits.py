"""Rate limits on Redis are shared by the replicas; an unreachable Redis falls back to per-process counting."""

from __future__ import annotations

import logging

import pytest

from api.config import ApiSettings
from guard.ratelimit import RateLimited, RateLimits


def test_wrong_logins_spread_over_two_replicas_hit_the_limit(redis_url) -> None:
    replicas = [RateLimits.from_settings(ApiSettings(rate_limit_login="4/minute"), redis_url=redis_url)
                for _ in range(2)]  # fmt: skip
    assert all(r.storage_uri == redis_url and r.shared for r in replicas)
    for n in range(4):
        replicas[n % 2].hit("login", "203.0.113.7")
    for replica in replicas:  # the fifth attempt is refused whichever replica gets it
        with pytest.raises(RateLimited):
            replica.hit("login", "203.0.113.7")


def test_without_redis_url_the_limits_stay_in_memory() -> None:
    limits = RateLimits.from_settings(ApiSettings(), redis_url=None)
    assert limits.storage_uri == "memory://" and not limits.shared


def test_redis_down_falls_back_to_memory_with_one_warning(caplog) -> None:
    limits = RateLimits({"login": "2/minute"}, storage_uri="redis://:pw@127.0.0.1:9/0")
    with caplog.at_level(logging.WARNING, logger="guard.ratelimit"):
        limits.hit("login", "a")
        limits.hit("login", "a")
        with pytest.raises(RateLimited):  # still limited, per process
            limits.hit("login", "a")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "per process" in warnings[0].getMessage()
    assert "pw" not in warnings[0].getMessage()
    assert not limits.shared
