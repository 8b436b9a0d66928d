"""Idempotency-Key support of POST /api/v1/chat/message: scopes, request hashes, per-key locks and retention.

The stored record itself (``storage.IdempotencyKey``) is written by ``ChatService`` in the turn's
transaction; this module only decides under which scope a key lives and serialises concurrent
calls with the same key inside the process, so a double submit waits for the first answer
instead of computing a second one. A record holds the whole response (the customer's message
included), so it is kept only ``ApiSettings.idempotency_retention_hours`` (``purge_expired``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

log = logging.getLogger(__name__)
PURGE_FIRST_AFTER_S = 300.0  # not during start-up, when the first answers come first
PURGE_EVERY_S = 3600.0

KEY_PATTERN = r"^[A-Za-z0-9_\-:.]{8,128}$"  # UUIDs and similar client-generated ids


def request_hash(body: dict[str, Any]) -> str:
    """SHA-256 of the request body in canonical JSON (the same key with another body is refused)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def opening_scope(phone: str) -> str:
    """Scope of a message that opens a conversation: its customer's phone, hashed (no personal data stored)."""
    return "open:" + hashlib.sha256(phone.encode()).hexdigest()[:32]


class KeyedLocks:
    """One lock per (scope, key) while some call holds or waits for it; forgotten afterwards."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, scope: str, key: str, blocking: bool = True) -> Iterator[bool]:
        """Hold this (scope, key), waiting until no other call holds it; True once held.

        With ``blocking=False`` (a coroutine on the event loop, which must not wait on a thread's lock)
        it yields False at once when another call holds the key, and holds nothing."""
        name = (scope, key)
        with self._guard:
            lock, users = self._locks.get(name, (threading.Lock(), 0))
            self._locks[name] = (lock, users + 1)
        held = lock.acquire(blocking)
        try:
            yield held
        finally:
            if held:
                lock.release()
            with self._guard:
                lock, users = self._locks[name]
                if users == 1:
                    del self._locks[name]
                else:
                    self._locks[name] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


async def purge_expired(repository: Any, retention_hours: int) -> None:
    """Delete the records older than ``retention_hours``, first ``PURGE_FIRST_AFTER_S`` after the server starts,
    then every ``PURGE_EVERY_S``, until cancelled.

    A task of the API server's lifespan; the deletions run in a thread, in short batches
    (``IdempotencyRepository.purge``). Every replica runs its own: a record two of them delete is deleted once.
    """
    import anyio.to_thread

    from storage.models import utcnow

    await asyncio.sleep(PURGE_FIRST_AFTER_S)
    while True:
        try:
            before = utcnow() - timedelta(hours=retention_hours)
            if deleted := await anyio.to_thread.run_sync(repository.purge, before):
                log.info("%d Idempotency-Key record(s) older than %d h deleted", deleted, retention_hours)
        except Exception as exc:  # the database may be away for a while: the next round tries again
            log.warning("Idempotency-Key records could not be purged: %s", type(exc).__name__)
        await asyncio.sleep(PURGE_EVERY_S)
