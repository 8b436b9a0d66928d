"""The one home of locks between replicas: leases with a TTL, renewal and a fencing token.

A lease is held by one owner (a replica) until it expires or is released; the holder renews it
well before its TTL. Each grant carries a fencing token that only grows, so work done under an
older grant can be told apart from the current holder's. Two implementations:

- ``LocalLeases``: in-process (no Redis configured: one replica, today's behaviour);
- ``RedisLeases``: ``SET name owner NX PX ttl`` plus compare-and-renew / compare-and-delete
  scripts, so only the holder extends or frees it. A Redis error grants nothing and renews
  nothing: a holder that cannot reach Redis gives its work up before the TTL lets another in.

``LeaseKeeper`` runs a piece of work (the social monitor, say) only while this replica holds its
lease: it keeps trying to acquire, starts the work, renews, and stops the work when the lease is
lost or cannot be renewed.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from cluster.redis import RedisLink

log = logging.getLogger(__name__)
PREFIX = "mobilia:lease:"
FENCE_PREFIX = "mobilia:fence:"

# Extend / delete only when the value is still ours (the holder and its fencing token).
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


@dataclass
class Lease:
    """One grant of a named lease: who holds it, its fencing token, and until when (monotonic clock)."""

    name: str
    owner: str
    token: int
    ttl: float
    renewed_at: float

    @property
    def value(self) -> str:
        return f"{self.owner}|{self.token}"

    def valid(self, margin: float = 0.0) -> bool:
        """True while the grant has not expired by this replica's clock (minus ``margin`` seconds)."""
        return time.monotonic() < self.renewed_at + self.ttl - margin


class LeaseService(ABC):
    """Acquire, renew and release named leases."""

    @abstractmethod
    def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Grant ``name`` to ``owner`` for ``ttl`` seconds unless someone else holds it."""

    @abstractmethod
    def renew(self, lease: Lease) -> bool:
        """Extend a grant by its TTL; False when it was lost (expired, taken, or the store is unreachable)."""

    @abstractmethod
    def release(self, lease: Lease) -> None:
        """Give the lease up now (no-op when it is no longer ours)."""

    @abstractmethod
    def holder(self, name: str) -> str | None:
        """Who holds ``name`` now (None when free or unknown)."""


class LocalLeases(LeaseService):
    """Leases inside one process (no Redis): the same contract, for a single replica."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, int, float]] = {}  # name -> (value, token, expires_at)
        self._fences: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        now = time.monotonic()
        with self._lock:
            held = self._held.get(name)
            if held is not None and held[2] > now:
                return None
            token = self._fences[name] = self._fences.get(name, 0) + 1
            lease = Lease(name, owner, token, ttl, now)
            self._held[name] = (lease.value, token, now + ttl)
            return lease

    def renew(self, lease: Lease) -> bool:
        now = time.monotonic()
        with self._lock:
            held = self._held.get(lease.name)
            if held is None or held[0] != lease.value or held[2] <= now:
                return False
            self._held[lease.name] = (lease.value, lease.token, now + lease.ttl)
        lease.renewed_at = now
        return True

    def release(self, lease: Lease) -> None:
        with self._lock:
            held = self._held.get(lease.name)
            if held is not None and held[0] == lease.value:
                del self._held[lease.name]

    def holder(self, name: str) -> str | None:
        with self._lock:
            held = self._held.get(name)
            return held[0].rsplit("|", 1)[0] if held and held[2] > time.monotonic() else None


class RedisLeases(LeaseService):
    """Leases in Redis, shared by every replica; fencing tokens from ``INCR``."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link

    def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        client = self.link.client
        started = time.monotonic()
        try:
            if client.get(PREFIX + name) is not None:
                self.link.note("ok")
                return None
            token = int(client.incr(FENCE_PREFIX + name))
            lease = Lease(name, owner, token, ttl, started)
            granted = client.set(PREFIX + name, lease.value, nx=True, px=int(ttl * 1000))
        except Exception as exc:  # unreachable Redis grants nothing
            self.link.note("unavailable")
            log.debug("lease %s not acquired: %s", name, type(exc).__name__)
            return None
        self.link.note("ok")
        return lease if granted else None

    def renew(self, lease: Lease) -> bool:
        started = time.monotonic()
        try:
            renewed = self.link.client.eval(_RENEW, 1, PREFIX + lease.name, lease.value, int(lease.ttl * 1000))
        except Exception as exc:
            self.link.note("unavailable")
            log.debug("lease %s not renewed: %s", lease.name, type(exc).__name__)
            return False
        self.link.note("ok")
        if renewed:
            lease.renewed_at = started  # counted from before the call: never longer than Redis keeps it
        return bool(renewed)

    def release(self, lease: Lease) -> None:
        try:
            self.link.client.eval(_RELEASE, 1, PREFIX + lease.name, lease.value)
        except Exception:  # it expires by itself
            self.link.note("unavailable")

    def holder(self, name: str) -> str | None:
        try:
            value = self.link.client.get(PREFIX + name)
        except Exception:
            self.link.note("unavailable")
            return None
        return value.rsplit("|", 1)[0] if value else None


class LeaseKeeper:
    """Run ``on_acquire(lease)`` while this replica holds lease ``name``; ``on_lose()`` when it does not any more.

    ``start()`` / ``stop()`` manage one daemon thread; ``stop()`` also releases the lease so another
    replica takes over at once (a killed replica's lease simply expires after its TTL).
    """

    def __init__(
        self,
        leases: LeaseService,
        name: str,
        owner: str,
        *,
        on_acquire: Callable[[Lease], None],
        on_lose: Callable[[], None],
        ttl: float = 10.0,
        renew_every: float = 3.0,
        retry_every: float = 2.0,
    ) -> None:
        if renew_every * 2 >= ttl:
            raise ValueError("renew_every must be well under half the TTL")
        self.leases = leases
        self.name = name
        self.owner = owner
        self.on_acquire = on_acquire
        self.on_lose = on_lose
        self.ttl = ttl
        self.renew_every = renew_every
        self.retry_every = retry_every
        self.lease: Lease | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def holding(self) -> bool:
        """True while this replica holds an unexpired grant."""
        lease = self.lease
        return lease is not None and lease.valid()

    def guard(self) -> bool:
        """For the guarded work, right before an irreversible step: is the grant still safely ours?"""
        lease = self.lease
        return lease is not None and lease.valid(margin=self.renew_every)

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.lease is None:
                    lease = self.leases.acquire(self.name, self.owner, self.ttl)
                    if lease is not None:
                        self.lease = lease
                        log.info("lease %s acquired by %s (token %s)", self.name, self.owner, lease.token)
                        self._call(self.on_acquire, lease)
                    wait = self.renew_every if lease is not None else self.retry_every
                else:
                    if not (self.lease.valid() and self.leases.renew(self.lease)):
                        log.warning("lease %s lost by %s: its work stops", self.name, self.owner)
                        self._drop()
                    wait = self.renew_every
                self._stop.wait(wait)
        finally:
            if self.lease is not None:
                self._drop()

    def _drop(self) -> None:
        """Stop the guarded work first, then free the lease (it may already be gone)."""
        lease, self.lease = self.lease, None
        self._call(self.on_lose)
        if lease is not None:
            self.leases.release(lease)

    def _call(self, fn: Callable, *args) -> None:
        try:
            fn(*args)
        except Exception:  # the keeper outlives a failing callback; the next cycle tries again
            log.exception("lease %s callback failed", self.name)
