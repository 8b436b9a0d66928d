"""The Redis link shared by the coordination services, with a cached health answer.

Nothing connects at import or construction: the client is created on first use. Every call has
short timeouts so a stopped Redis costs a replica about a second, never a hang; callers treat a
Redis error as "not granted" (a lease) or "not sent" (a notice) and carry on.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Literal

log = logging.getLogger(__name__)

Health = Literal["ok", "unavailable", "disabled"]


def redacted(url: str) -> str:
    """The URL with its password masked, safe for a log line."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


class RedisLink:
    """Lazy ``redis.Redis`` client for one URL; ``health()`` says ok / unavailable, logged on each change."""

    def __init__(self, url: str, *, timeout: float = 1.0, cache_s: float = 1.0) -> None:
        self.url = url
        self.timeout = timeout
        self.cache_s = cache_s
        self._client: Any = None
        self._lock = threading.Lock()
        self._health: Health | None = None
        self._checked = 0.0

    def __repr__(self) -> str:
        return f"RedisLink({redacted(self.url)!r})"

    @property
    def client(self) -> Any:
        """The ``redis.Redis`` client (one connection pool per process)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import redis

                    self._client = redis.Redis.from_url(
                        self.url,
                        socket_timeout=self.timeout,
                        socket_connect_timeout=self.timeout,
                        health_check_interval=30,
                        decode_responses=True,
                    )
        return self._client

    def pubsub_client(self) -> Any:
        """A client for a subscriber connection: no read timeout (it waits for notices), short connect."""
        import redis

        return redis.Redis.from_url(
            self.url, socket_connect_timeout=self.timeout, socket_keepalive=True, decode_responses=True
        )

    def health(self, *, fresh: bool = False) -> Health:
        """'ok' when Redis answers PING, else 'unavailable' (answer cached for ``cache_s`` seconds)."""
        now = time.monotonic()
        if not fresh and self._health is not None and now - self._checked < self.cache_s:
            return self._health
        try:
            self.client.ping()
            health: Health = "ok"
        except Exception:  # any client error means the same to the replica: not reachable now
            health = "unavailable"
        self.note(health, now)
        return health

    def note(self, health: Health, now: float | None = None) -> None:
        """Record the outcome of a call; one log line per change of state, never one per call."""
        previous, self._health, self._checked = self._health, health, now or time.monotonic()
        if previous == health:
            return
        if health == "unavailable":
            log.warning("Redis %s unreachable: this replica runs degraded until it answers", redacted(self.url))
        elif previous == "unavailable":
            log.info("Redis %s answers again", redacted(self.url))

    def close(self) -> None:
        """Close the pooled connections."""
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._client = None
