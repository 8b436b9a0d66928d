"""The one home of locks between replicas: leases with a TTL, renewal and a fencing token.

A lease is held by one owner (a replica) until it expires or is released; the holder renews it
well before its TTL. Each grant carries a fencing token that only grows, so work done under an
older grant can be told apart from the current holder's. Two implementations:

- ``LocalLeases``: in-process (no Redis configured: one replica, today's behaviour);
- ``RedisLeases``: ``SET name owner NX PX ttl`` plus compare-and-renew / compare-and-delete
  scripts, so only the holder extends or frees it. A Redis error grants nothing and renews
  nothing: a holder that cannot reach Redis gives its work up before the TTL lets another in.
- ``DatabaseLeases``: no Redis, but several processes on one database (the app and a
  ``python -m social.monitor``): a grant is an open handle, a PostgreSQL session advisory lock on
  a connection of its own or an ``flock`` on a file beside the SQLite file, so the server or the
  OS frees it the moment its holder dies.

``LeaseKeeper`` runs a piece of work (the social monitor, say) only while this replica holds its
lease: it keeps trying to acquire, starts the work, renews, and stops the work when the lease is
lost or cannot be renewed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import re
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    def close(self) -> None:  # noqa: B027 (optional hook: most implementations hold nothing)
        """Free what this process still holds (at shutdown)."""


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


class DatabaseLeases(LeaseService):
    """Leases between the processes of one database, without Redis: each grant is an open handle.

    PostgreSQL: ``pg_try_advisory_lock`` on a connection kept for the grant (its
    ``application_name`` says who holds it); a SQLite file: an exclusive ``flock`` on
    ``<database>.lease-<name>.lock`` (the holder's name written inside). Renewing checks the handle
    still holds; a holder that dies, or loses its connection, frees the lease at once. Fencing
    tokens come from the clock (nanoseconds), so they grow from one grant to the next.
    """

    LOCK_CLASS = 0x4D6F62  # first key of the two-key advisory locks of leases ("Mob")

    def __init__(self, db: Any) -> None:
        self.db = db
        self._handles: dict[str, Any] = {}  # lease value -> open connection or file
        self._lock = threading.Lock()
        self._engine = None

    @property
    def _postgres(self) -> bool:
        return not self.db.is_sqlite

    def _key(self, name: str) -> dict[str, int]:
        return {"c": self.LOCK_CLASS, "o": zlib.crc32(name.encode()) & 0x7FFFFFFF}

    def _lock_path(self, name: str) -> Path:
        database = Path(self.db.engine.url.database or "").expanduser()
        return database.with_name(f"{database.name}.lease-{re.sub(r'[^A-Za-z0-9_-]', '_', name)}.lock")

    def _connect(self):
        """A connection outside the app's pool (it stays open as long as the grant)."""
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        if self._engine is None:
            self._engine = create_engine(self.db.engine.url, poolclass=NullPool)
        return self._engine.connect()

    def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        lease = Lease(name, owner, time.time_ns(), ttl, time.monotonic())
        try:
            handle = self._take_pg(name, owner) if self._postgres else self._take_file(name, owner)
        except Exception as exc:  # an unreachable database grants nothing
            log.debug("lease %s not acquired: %s", name, type(exc).__name__)
            return None
        if handle is None:
            return None
        with self._lock:
            self._handles[lease.value] = handle
        return lease

    def _take_pg(self, name: str, owner: str):
        from sqlalchemy import text

        connection = self._connect()
        try:
            connection.execute(text("SELECT set_config('application_name', :owner, false)"), {"owner": owner[:63]})
            granted = connection.execute(text("SELECT pg_try_advisory_lock(:c, :o)"), self._key(name)).scalar()
            connection.commit()
        except Exception:
            connection.close()
            raise
        if not granted:
            connection.close()
            return None
        return connection

    def _take_file(self, name: str, owner: str):
        handle = self._lock_path(name).open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        handle.truncate(0)
        handle.write(owner)
        handle.flush()
        return handle

    def renew(self, lease: Lease) -> bool:
        with self._lock:
            handle = self._handles.get(lease.value)
        if handle is None:
            return False
        if self._postgres:
            from sqlalchemy import text

            try:
                handle.execute(text("SELECT 1"))
                handle.commit()
            except Exception as exc:  # the connection, and with it the lock, is gone
                log.debug("lease %s not renewed: %s", lease.name, type(exc).__name__)
                self.release(lease)
                return False
        lease.renewed_at = time.monotonic()
        return True

    def release(self, lease: Lease) -> None:
        with self._lock:
            handle = self._handles.pop(lease.value, None)
        if handle is None:
            return
        try:
            if self._postgres:
                # Unlock before closing: the server ends a closed session in the background, so a
                # lock left to the disconnect can still show as held to the next reader for a moment.
                from sqlalchemy import text

                handle.execute(text("SELECT pg_advisory_unlock(:c, :o)"), self._key(lease.name))
                handle.commit()
            else:
                fcntl.flock(handle, fcntl.LOCK_UN)
        except Exception:  # already broken: its lock went with the connection
            pass
        with contextlib.suppress(Exception):
            handle.close()  # closing the connection ends its session (and any lock it still holds)

    def holder(self, name: str) -> str | None:
        try:
            return self._holder_pg(name) if self._postgres else self._holder_file(name)
        except Exception:
            return None

    def _holder_pg(self, name: str) -> str | None:
        from sqlalchemy import text

        query = text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :c AND l.objid = :o AND l.objsubid = 2 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        with self.db.engine.connect() as connection:
            return connection.execute(query, self._key(name)).scalar()

    def _holder_file(self, name: str) -> str | None:
        path = self._lock_path(name)
        if not path.exists():
            return None
        with path.open("r", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return handle.read().strip() or "?"
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None

    def close(self) -> None:
        """Free every grant of this process and the lease connections."""
        with self._lock:
            values = list(self._handles)
        for value in values:
            owner, _, token = value.rpartition("|")
            self.release(Lease("", owner, int(token), 0, 0))
        if self._engine is not None:
            self._engine.dispose()


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
        self.attempted = threading.Event()  # set once the first acquisition was tried (granted or not)
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
        self.attempted.clear()
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
                    self.attempted.set()
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
