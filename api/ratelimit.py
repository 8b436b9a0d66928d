"""Rate limits of the API (moving window, in-memory storage of the ``limits`` package)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class RateLimited(Exception):
    """Too many requests; ``retry_after`` is the number of seconds to wait."""

    def __init__(self, retry_after: int, detail: str) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.detail = detail


class RateLimits:
    """Named limits checked with ``hit(name, key)``; one in-memory store per app (per process)."""

    def __init__(self, limits: dict[str, str]) -> None:
        self._storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._items: dict[str, RateLimitItem] = {name: parse(value) for name, value in limits.items()}

    def hit(self, name: str, key: str) -> None:
        """Count one request of ``key`` against limit ``name``; raise RateLimited when over it."""
        item = self._items[name]
        if self._limiter.hit(item, name, key):
            return
        reset_at, _remaining = self._limiter.get_window_stats(item, name, key)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimited(retry_after, "Trop de requêtes : merci de patienter avant de réessayer.")

    def reset(self) -> None:
        """Forget every counter (tests)."""
        self._storage.reset()
