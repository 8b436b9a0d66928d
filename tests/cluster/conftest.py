"""Fixtures of the coordination tests: the real Redis of MOBILIA_TEST_REDIS_URL (scripts/redis.sh), flushed per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

REDIS_URL = os.environ.get("MOBILIA_TEST_REDIS_URL", "")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """URL of the test Redis (emptied before and after the test), or a skip."""
    if not REDIS_URL:
        pytest.skip("Redis not configured: run `bash scripts/redis.sh` and export MOBILIA_TEST_REDIS_URL")
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()
