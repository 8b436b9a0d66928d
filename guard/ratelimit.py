"""The one rate limiter of the app: API routes and Gradio events count in the same store.

Moving-window limits of the ``limits`` package, named (``conversation``, ``login``, ...) and keyed
per conversation, client address or account. The counters live in the storage named by a URI:
``memory://`` (one process, the default) or, for several replicas, a shared one such as
``redis://host:6379`` (``limits`` storage URIs).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)
RETRY_SHARED_S = 5.0  # seconds between two tries of an unreachable shared store (each try costs a timeout)
TOO_MANY = "Trop de requêtes : merci de patienter avant de réessayer."
TOO_FAST = "Vous envoyez trop de messages : merci de patienter {wait} avant de réessayer."
TOO_MANY_CONVERSATIONS = (
    "Trop de conversations ouvertes depuis votre connexion : réessayez dans {wait}, "
    "ou poursuivez la conversation déjà ouverte."
)
LOCKED_OUT = "Trop de tentatives de connexion… réessayez dans {minutes}."


def wait_text(seconds: int) -> str:
    """A wait in French words: '45 secondes', '1 minute', '15 minutes'."""
    if seconds < 60:
        return f"{seconds} seconde{'s' if seconds > 1 else ''}"
    return minutes_text(seconds)


def minutes_text(seconds: int) -> str:
    """A wait rounded up to whole minutes: '1 minute', '15 minutes'."""
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute{'s' if minutes > 1 else ''}"


class RateLimited(Exception):
    """Over a limit: ``retry_after`` seconds to wait, ``detail`` a French message for the user."""

    def __init__(self, retry_after: int, detail: str) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.detail = detail


@dataclass(frozen=True)
class Limit:
    """One named limit: a ``limits`` rate ('10/minute', '5 per 15 minutes') and its French message.

    The message may use ``{wait}`` (seconds or minutes) and ``{minutes}`` (always minutes).
    """

    rate: str
    message: str = TOO_MANY


class PrunedMemoryStorage(MemoryStorage):
    """``limits``' in-process storage, pruned of expired entries at most once a second by the thread that counts.

    The stock storage starts a new timer thread 10 ms after any hit that finds the previous one finished: under
    steady traffic that is a thread per hit or two, each walking every key, all competing for the GIL with the
    requests. Expired entries never count (every check compares timestamps); pruning only frees their memory.
    """

    PRUNE_EVERY_S = 1.0

    def __init__(self, uri: str | None = None, **options) -> None:
        super().__init__(uri, **options)
        self._next_prune = 0.0

    def _MemoryStorage__schedule_expiry(self) -> None:  # replaces the stock timer thread (name-mangled hook)
        now = time.monotonic()
        if now >= self._next_prune:
            self._next_prune = now + self.PRUNE_EVERY_S
            self._MemoryStorage__expire_events()


class RateLimits:
    """Named limits checked with ``hit(name, key)``; built once per process (``Services.limits``).

    With a shared storage (Redis), an unreachable store does not stop the app: counting falls back
    to this process' memory (one warning per outage) and goes back to the shared store by itself.
    """

    def __init__(self, limits: Mapping[str, str | Limit], storage_uri: str = "memory://") -> None:
        self.storage_uri = storage_uri
        shared = not storage_uri.startswith("memory://")
        options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5} if storage_uri.startswith("redis") else {}
        self._storage = storage_from_string(storage_uri, **options) if shared else PrunedMemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._fallback = MovingWindowRateLimiter(PrunedMemoryStorage()) if shared else None
        self._degraded_until = 0.0  # while in the future, the shared store is not tried (monotonic clock)
        self._degraded = False
        specs = {name: spec if isinstance(spec, Limit) else Limit(spec) for name, spec in limits.items()}
        self._items: dict[str, RateLimitItem] = {name: parse(spec.rate) for name, spec in specs.items()}
        self._messages = {name: spec.message for name, spec in specs.items()}

    @classmethod
    def from_settings(cls, api, redis_url: str | None = None) -> RateLimits:
        """The app's limits from ``ApiSettings`` (``MOBILIA_API__RATE_LIMIT_*``).

        ``redis_url`` (MOBILIA_REDIS_URL) becomes the storage when no other shared one is configured.
        """
        return cls(
            {
                "ip": Limit(api.rate_limit_ip),
                "conversation": Limit(api.rate_limit_conversation, TOO_FAST),
                "conversations": Limit(api.rate_limit_conversations_client, TOO_MANY_CONVERSATIONS),
                "login": Limit(api.rate_limit_login, LOCKED_OUT),
                "login_account": Limit(api.rate_limit_login_account, LOCKED_OUT),
            },
            storage_uri=cls.storage_uri_of(api, redis_url),
        )

    @staticmethod
    def storage_uri_of(api, redis_url: str | None = None) -> str:
        """Where ``from_settings``' limits count: ``MOBILIA_API__RATE_LIMIT_STORAGE_URI``, else Redis if given."""
        storage_uri = api.rate_limit_storage_uri
        return redis_url if redis_url and storage_uri.startswith("memory://") else storage_uri

    def hit(self, name: str, key: str) -> None:
        """Count one event of ``key`` against limit ``name``; raise RateLimited (nothing counted) when over it."""
        item = self._items[name]
        limiter = self._limiter_now()
        try:
            if limiter.hit(item, name, key):
                self._recovered(limiter)
                return
            reset_at, _remaining = limiter.get_window_stats(item, name, key)
        except Exception as exc:
            if limiter is not self._limiter or self._fallback is None:
                raise
            self._degrade(exc)
            return self.hit(name, key)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        detail = self._messages[name].format(wait=wait_text(retry_after), minutes=minutes_text(retry_after))
        raise RateLimited(retry_after, detail)

    @property
    def shared(self) -> bool:
        """True while the counters are in the shared store (False: none configured, or it is unreachable)."""
        return self._fallback is not None and not self._degraded

    def _limiter_now(self) -> MovingWindowRateLimiter:
        if self._fallback is not None and time.monotonic() < self._degraded_until:
            return self._fallback
        return self._limiter

    def _degrade(self, exc: Exception) -> None:
        """The shared store failed: count in memory for a few seconds, then try it again."""
        self._degraded_until = time.monotonic() + RETRY_SHARED_S
        if not self._degraded:
            self._degraded = True
            log.warning("rate-limit storage unreachable (%s): limits are counted per process until it answers",
                        type(exc).__name__)  # fmt: skip

    def _recovered(self, limiter: MovingWindowRateLimiter) -> None:
        if self._degraded and limiter is self._limiter:
            self._degraded = False
            log.info("rate-limit storage answers again: limits are shared again")

    def login(self, client: str, username: str) -> None:
        """Count one staff login attempt per client address and per account (lock-out when over either)."""
        self.hit("login", client)
        self.hit("login_account", (username or "").strip().lower()[:128])

    def reset(self) -> None:
        """Forget every counter (tests)."""
        self._storage.reset()
        if self._fallback is not None:
            self._fallback.storage.reset()
