"""The one change bus between replicas: "this changed, apply it" for promotions, rollbacks and KB rebuilds.

A change is a new version of a topic, written in the database (``app_state`` key
``cluster.version.<topic>``): the database is the truth, so a replica that missed a notice still
sees the change at its next cheap read of the versions (every ``change_poll_s`` seconds, one
query). Redis pub/sub only makes it instant. The replica that made the change applies it itself
before publishing; the others run the topic's subscribers (which re-read the state they apply
from the database, so applying twice is harmless).

``LocalBus`` (no Redis: one replica) publishes nowhere; subscribers are only there for uniformity.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from cluster.redis import RedisLink
from storage import AppStateRepository

log = logging.getLogger(__name__)
CHANNEL = "mobilia:changes"
VERSION_PREFIX = "cluster.version."
TOPICS = ("chat_model", "kb_index")


class LocalBus:
    """A single replica: nothing to tell anybody."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Callable[[], None]]] = {}

    def subscribe(self, topic: str, callback: Callable[[], None]) -> None:
        """Run ``callback()`` when another replica changes ``topic`` (never, here)."""
        _check(topic)
        self._subscribers.setdefault(topic, []).append(callback)

    def publish(self, topic: str) -> str:
        """Record that ``topic`` changed on this replica (already applied here)."""
        _check(topic)
        return uuid.uuid4().hex

    def applied(self) -> dict[str, str]:
        """Version of each topic this replica applied (none in a single process)."""
        return {}

    def start(self) -> None:
        """Nothing to watch."""

    def stop(self) -> None:
        """Nothing to stop."""


class ChangeBus(LocalBus):
    """Versions in the database + Redis pub/sub; one watcher thread applies other replicas' changes."""

    def __init__(self, state: AppStateRepository, link: RedisLink, *, replica: str, poll_s: float = 2.0) -> None:
        super().__init__()
        self.state = state
        self.link = link
        self.replica = replica
        self.poll_s = poll_s
        self._applied: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def publish(self, topic: str) -> str:
        _check(topic)
        version = uuid.uuid4().hex
        self.state.set(VERSION_PREFIX + topic, {"version": version, "by": self.replica})
        with self._lock:
            self._applied[topic] = version  # the publisher applied it before publishing
        try:
            self.link.client.publish(CHANNEL, topic)
        except Exception:  # the others see the version at their next read of the database
            self.link.note("unavailable")
        return version

    def applied(self) -> dict[str, str]:
        with self._lock:
            return dict(self._applied)

    def start(self) -> None:
        """Start the watcher (database reads) and the listener (Redis notices that wake it)."""
        if self._threads:
            return
        self._stop.clear()
        self._baseline()
        for target, name in ((self._watch, "change-watch"), (self._listen, "change-listen")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(5)
        self._threads = []

    def check(self) -> list[str]:
        """Read the versions once and apply every topic whose version moved; returns those topics."""
        changed = []
        for topic, version in self._versions().items():
            with self._lock:
                if self._applied.get(topic) == version:
                    continue
                self._applied[topic] = version
            changed.append(topic)
            for callback in self._subscribers.get(topic, []):
                try:
                    callback()
                except Exception:  # one failing subscriber must not stop the others or the watcher
                    log.exception("applying change %s failed", topic)
        if changed:
            log.info("applied changes from other replicas: %s", ", ".join(changed))
        return changed

    def _versions(self) -> dict[str, str]:
        found = {}
        for topic in TOPICS:
            value = self.state.get(VERSION_PREFIX + topic)
            if isinstance(value, dict) and value.get("version"):
                found[topic] = value["version"]
        return found

    def _baseline(self) -> None:
        """At start-up the replica loads the current state anyway: what is there now counts as applied."""
        try:
            with self._lock:
                self._applied.update(self._versions())
        except Exception:
            log.exception("could not read change versions at start-up")

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.check()
            except Exception as exc:  # database briefly unavailable: next round
                log.warning("change check failed: %s", type(exc).__name__)

    def _listen(self) -> None:
        """Wake the watcher on each Redis notice; reconnect quietly while Redis is away."""
        while not self._stop.is_set():
            pubsub: Any = None
            try:
                pubsub = self.link.pubsub_client().pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                self._wake.set()  # (re)connected: something may have been missed meanwhile
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._wake.set()
            except Exception:
                self._stop.wait(self.poll_s)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # already broken
                        log.debug("pubsub close failed")


def _check(topic: str) -> None:
    if topic not in TOPICS:
        raise ValueError(f"unknown change topic {topic!r}")
