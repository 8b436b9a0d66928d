"""Coordination of several app replicas on one database: Redis link, leases and the change bus.

``build_cluster(settings, db)`` gives local implementations when ``MOBILIA_REDIS_URL`` is unset (one
replica: today's behaviour; leases held through the database, so a CLI monitor and the app still
exclude each other) and Redis-backed ones otherwise. Nothing connects until
used; ``start()`` / ``stop()`` run the change watcher.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from cluster.bus import ChangeBus, LocalBus
from cluster.config import ClusterSettings
from cluster.leases import DatabaseLeases, Lease, LeaseKeeper, LeaseService, LocalLeases, RedisLeases
from cluster.redis import Health, RedisLink

__all__ = ["Cluster", "ClusterSettings", "Lease", "LeaseKeeper", "LeaseService", "build_cluster", "replica_name"]


def replica_name() -> str:
    """This process' name among the replicas: host, pid and a random suffix (a restarted pid differs)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Cluster:
    """What the services use to coordinate: this replica's name, leases, change bus and Redis health."""

    replica: str
    settings: ClusterSettings
    leases: LeaseService
    bus: LocalBus
    redis: RedisLink | None = None
    _keepers: list[LeaseKeeper] = field(default_factory=list)

    @property
    def shared(self) -> bool:
        """True when replicas coordinate through Redis (MOBILIA_REDIS_URL set)."""
        return self.redis is not None

    def health(self) -> Health:
        """'disabled' (no Redis configured), 'ok' or 'unavailable'."""
        return "disabled" if self.redis is None else self.redis.health()

    def keeper(self, name: str, *, on_acquire, on_lose) -> LeaseKeeper:
        """A LeaseKeeper for lease ``name`` with this cluster's timings (started by ``start()``)."""
        s = self.settings
        keeper = LeaseKeeper(self.leases, name, self.replica, on_acquire=on_acquire, on_lose=on_lose,
                             ttl=s.lease_ttl_s, renew_every=s.lease_renew_s, retry_every=s.lease_retry_s)  # fmt: skip
        self._keepers.append(keeper)
        return keeper

    def changed(self, topic: str) -> None:
        """Tell the other replicas that ``topic`` changed (this replica already applied it)."""
        self.bus.publish(topic)

    def start(self) -> None:
        self.bus.start()
        for keeper in self._keepers:
            keeper.start()

    def stop(self) -> None:
        for keeper in self._keepers:
            keeper.stop()
        self.bus.stop()
        self.leases.close()
        if self.redis is not None:
            self.redis.close()

    def describe(self) -> dict[str, Any]:
        """What /health and /model-status say about coordination."""
        return {"replica": self.replica, "redis": self.health()}


def build_cluster(settings: Any, db: Any) -> Cluster:
    """The coordination services for ``settings`` (Settings): Redis-backed when redis_url is set."""
    from storage import AppStateRepository

    config: ClusterSettings = settings.cluster
    replica = replica_name()
    url = settings.redis_url.get_secret_value() if settings.redis_url is not None else ""
    if not url:
        # No Redis: leases still bind every process of the database (a CLI monitor beside the app).
        leases = LocalLeases() if db.is_memory else DatabaseLeases(db)
        return Cluster(replica, config, leases, LocalBus())
    link = RedisLink(url, timeout=config.redis_timeout_s, cache_s=config.health_cache_s)
    bus = ChangeBus(AppStateRepository(db), link, replica=replica, poll_s=config.change_poll_s)
    return Cluster(replica, config, RedisLeases(link), bus, redis=link)
