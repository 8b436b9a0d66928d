"""Mastodon monitor: streams followed hashtags and mentions, catches up through REST after every (re)start.

    python -m social.monitor            # run until Ctrl+C (uses MOBILIA_MASTODON__* settings)
    python -m social.monitor --once     # catch up from the last seen ids, process, exit

The command takes the app's monitor lease (``social-monitor``: in Redis with MOBILIA_REDIS_URL, else
through the database), so it never runs beside an app replica's monitor: it waits for the lease
(or, with --once, does nothing while another monitor holds it).

Streaming never replays what was posted while disconnected, so each connection cycle is:
open the streams (hashtags + user stream for mentions), then page the REST timelines
(``timeline_hashtag``, mention ``notifications``) from the last seen ids persisted in
``app_state``, then process streamed events until a stream breaks; then back off and start
over. Posts seen twice (stream and catch-up overlap) are stored once: ``status_id`` is unique.
All processing happens on the monitor thread, one status at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from social.config import MastodonSettings
from social.service import SocialService
from storage import AppStateRepository
from storage.db import Database
from storage.models import utcnow

log = logging.getLogger(__name__)

STATE_PREFIX = "social.last_seen."
MONITOR_LEASE = "social-monitor"  # held by the one monitor of the app replicas and of this command
_STOP = object()


def _newer(a: str | None, b: str | None) -> str | None:
    """The larger of two Mastodon ids (numeric strings compare as numbers)."""
    if a is None or b is None:
        return a or b
    try:
        return a if int(a) >= int(b) else b
    except ValueError:
        return max(a, b)


@dataclass
class MonitorStatus:
    """What the social tab shows about the monitor."""

    running: bool = False
    connected: bool = False
    last_seen: dict[str, str] = field(default_factory=dict)
    last_error: str | None = None
    reconnects: int = 0
    processed: int = 0


class SocialMonitor:
    """Background Mastodon listener with ``start()`` / ``stop()``; safe to start and stop repeatedly."""

    def __init__(
        self,
        settings: MastodonSettings,
        db: Database,
        *,
        service: SocialService | None = None,
        tickets: Any = None,
        public_url: str = "http://127.0.0.1:7860",
    ) -> None:
        if service is None:
            if tickets is None:
                from tickets import TicketService

                tickets = TicketService(db)
            service = SocialService(settings, db, tickets, public_url=public_url)
        self.settings = settings
        self.db = db
        self.service = service
        self.state = AppStateRepository(db)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._events: queue.Queue = queue.Queue()
        self._handles: list[Any] = []
        self._broken = threading.Event()
        self._status = MonitorStatus()
        self._lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the monitor thread (no-op when already running)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="social-monitor", daemon=True)
        self._thread.start()
        log.info(
            "social monitor started for %s (hashtags: %s, mode: %s)",
            self.settings.instance_url,
            ", ".join(self.settings.hashtags),
            self.settings.reply_mode,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to finish, close the streams and wait for it."""
        self._stop.set()
        self._events.put(_STOP)
        self._close_streams()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("social monitor did not stop within %.0f s", timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        """True while the monitor thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> MonitorStatus:
        """A snapshot for the UI: running, connected, last seen ids, last error."""
        with self._lock:
            snap = MonitorStatus(**{**self._status.__dict__, "last_seen": self.last_seen()})
        snap.running = self.running
        return snap

    def last_seen(self) -> dict[str, str]:
        """Persisted cursors: one per hashtag and one for mention notifications."""
        keys = [f"tag.{t.lower()}" for t in self.settings.hashtags] + ["mentions"]
        return {k: v for k in keys if (v := self.state.get(STATE_PREFIX + k))}

    # --- main loop --------------------------------------------------------------------------

    def _run(self) -> None:
        """Connect, catch up, process streamed events; back off and repeat until stopped."""
        delay = self.settings.backoff_initial
        while not self._stop.is_set():
            try:
                self._open_streams()
                self._set(connected=True)
                self.catch_up()
                delay = self.settings.backoff_initial  # a full cycle worked: reset the backoff
                self._pump()
            except Exception as exc:
                self._set(last_error=self._redact(f"{type(exc).__name__}: {exc}"))
                log.warning("social monitor error, reconnecting in %.1f s: %s", delay, type(exc).__name__)
            finally:
                self._set(connected=False)
                self._close_streams()
                self._drain()
            if self._stop.wait(delay):
                break
            delay = min(self.settings.backoff_max, delay * 2)
            with self._lock:
                self._status.reconnects += 1

    def run_once(self) -> dict[str, int]:
        """Catch up from the last seen ids and process everything, without streaming (CLI --once)."""
        return self.catch_up()

    def _pump(self) -> None:
        """Process streamed statuses until stop or until a stream breaks; settle stale replies now and then."""
        stale = timedelta(seconds=2 * self.settings.request_timeout)
        next_check = time.monotonic() + stale.total_seconds()
        while not self._stop.is_set():
            if self._broken.is_set() or not all(h.is_alive() for h in self._handles):
                raise ConnectionError("stream interrupted")
            if time.monotonic() >= next_check:
                # A reply left 'sending' by a replica killed mid-send (another replica held the monitor then)
                # is settled here, not only at the next reconnection: checked on the server, then sent once.
                self.service.reconcile_stale(stale)
                self.service.send_queued()
                next_check = time.monotonic() + stale.total_seconds()
            try:
                item = self._events.get(timeout=0.25)
            except queue.Empty:
                continue
            if item is _STOP:
                return
            self._process(*item)

    def _drain(self) -> None:
        """Process statuses already received before a disconnect (they are real posts)."""
        while True:
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP and not self._stop.is_set():
                try:
                    self._process(*item)
                except Exception:  # the catch-up of the next cycle will see it again
                    log.exception("could not process a streamed status")

    def _process(self, status: dict[str, Any], source: str, cursor_key: str | None, cursor: str | None) -> None:
        """Handle one status, then advance its cursor (after storing, so a crash re-reads it)."""
        self.service.handle_status(status, source)
        with self._lock:
            self._status.processed += 1
        if cursor_key and cursor:
            self._advance(cursor_key, cursor)

    def _advance(self, key: str, value: str) -> None:
        """Persist a cursor, never moving it backwards."""
        current = self.state.get(STATE_PREFIX + key)
        newest = _newer(current, value)
        if newest != current:
            self.state.set(STATE_PREFIX + key, newest)

    # --- catch-up ----------------------------------------------------------------------------

    def catch_up(self) -> dict[str, int]:
        """Page every followed timeline forward from its cursor; returns statuses read per source."""
        client = self.service.client
        self.service.me()
        self.service.reconcile_stale(timedelta(seconds=2 * self.settings.request_timeout))
        counts = {}
        for tag in self.settings.hashtags:
            counts[f"#{tag}"] = self._page(
                f"tag.{tag.lower()}", partial(client.timeline_hashtag, tag), lambda item: item, f"hashtag #{tag}"
            )
        counts["mentions"] = self._page(
            "mentions", partial(client.notifications, types=["mention"]), lambda item: item.get("status"), "mention"
        )
        self.service.send_queued()
        return counts

    def _page(self, key: str, fetch, status_of, source: str) -> int:
        """Read one timeline from its cursor, oldest first, advancing the cursor page by page."""
        cursor = self.state.get(STATE_PREFIX + key)
        oldest_allowed = utcnow() - timedelta(hours=self.settings.catch_up_max_age_hours)
        read = 0
        for _ in range(self.settings.catch_up_max_pages):
            if self._stop.is_set():
                break
            kwargs = {"limit": self.settings.catch_up_page_size}
            if cursor is not None:
                kwargs["min_id"] = cursor
            items = sorted(fetch(**kwargs), key=lambda it: int(it["id"]))
            for item in items:
                status = status_of(item)
                created = status.get("created_at") if status else None
                if status is not None and (created is None or created >= oldest_allowed):
                    self.service.handle_status(status, source)
                    read += 1
                cursor = _newer(cursor, str(item["id"]))
                self._advance(key, cursor)
            if cursor is None or len(items) < self.settings.catch_up_page_size:
                break
        return read

    # --- streaming -----------------------------------------------------------------------------

    def _open_streams(self) -> None:
        """Open one stream per hashtag plus the user stream (notifications = mentions)."""
        self._close_streams()
        self._broken.clear()
        client = self.service.client
        self.service.me()
        timeout = self.settings.stream_timeout
        for tag in self.settings.hashtags:
            listener = _listener(self, source=f"hashtag #{tag}", cursor_key=f"tag.{tag.lower()}")
            self._handles.append(client.stream_hashtag(tag, listener, run_async=True, timeout=timeout))
        listener = _listener(self, source="mention", cursor_key="mentions")
        self._handles.append(client.stream_user(listener, run_async=True, timeout=timeout))

    def _close_streams(self) -> None:
        """Close every stream handle (idempotent) and wait briefly for their threads."""
        handles, self._handles = self._handles, []
        for handle in handles:
            with contextlib.suppress(Exception):  # closing a dead connection may fail: it is closed anyway
                handle.close()
        for handle in handles:
            handle.join(timeout=2.0)

    # --- helpers ------------------------------------------------------------------------------

    def _set(self, **values: Any) -> None:
        with self._lock:
            for name, value in values.items():
                setattr(self._status, name, value)

    def _redact(self, text: str) -> str:
        """Never let the access token reach a log line or the UI."""
        if self.settings.access_token is not None:
            secret = self.settings.access_token.get_secret_value()
            if secret:
                text = text.replace(secret, "***")
        return text[:500]


def _listener(monitor: SocialMonitor, *, source: str, cursor_key: str) -> Any:
    """A Mastodon.py stream listener that queues statuses for the monitor thread.

    Built inside a function so that importing this module does not import Mastodon.py.
    """
    from mastodon.streaming import StreamListener

    class Listener(StreamListener):
        def on_update(self, status):
            if source != "mention":  # the user stream's updates are the home timeline: ignore
                monitor._events.put((status, source, cursor_key, str(status["id"])))

        def on_notification(self, notification):
            if notification.get("type") == "mention" and notification.get("status"):
                monitor._events.put((notification["status"], source, cursor_key, str(notification["id"])))

        def on_abort(self, err):
            monitor._broken.set()

        def handle_stream(self, response):
            # One call per connection: however it ends, the monitor must reconnect and catch up.
            try:
                super().handle_stream(response)
            except Exception as exc:  # swallowed so the stream thread ends quietly
                log.info("stream %s ended: %s", source, type(exc).__name__)
            finally:
                monitor._broken.set()

    return Listener()


def make_parser() -> argparse.ArgumentParser:
    """Command-line options; the Mastodon settings come from MOBILIA_MASTODON__* (see .env.example)."""
    parser = argparse.ArgumentParser(prog="python -m social.monitor", description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="catch up from the last seen ids, process, exit")
    parser.add_argument("--db", help="database URL (default: settings / DATABASE_URL)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the monitor in the foreground (or once) with the app's settings."""
    args = make_parser().parse_args(argv)
    from logsetup import configure_logging
    from settings import get_settings

    settings = get_settings(**({"database_url": args.db} if args.db else {}))
    configure_logging(settings.log_level, settings.log_format)
    if not settings.mastodon.enabled:
        print("Mastodon non configuré : définissez MOBILIA_MASTODON__INSTANCE_URL et MOBILIA_MASTODON__ACCESS_TOKEN.")
        return 2
    from cluster import build_cluster

    db = Database(settings.database_url)
    db.migrate()
    monitor = SocialMonitor(settings.mastodon, db, public_url=settings.public_url)
    cluster = build_cluster(settings, db)
    if args.once:
        return _run_once(monitor, cluster)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    keeper = cluster.keeper(MONITOR_LEASE, on_acquire=lambda _lease: monitor.start(), on_lose=monitor.stop)
    monitor.service.guard = keeper.guard  # no automatic reply once the lease is in doubt
    keeper.start()
    keeper.attempted.wait(30)
    if not keeper.holding:
        log.info("another monitor holds the lease (%s): waiting for it", cluster.leases.holder(MONITOR_LEASE))
    try:
        while not done.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()  # stops the monitor, then frees the lease for an app replica
        monitor.stop()
    return 0


def _run_once(monitor: SocialMonitor, cluster) -> int:
    """--once under the monitor lease; when another monitor holds it, that one is catching up already."""
    keeper = cluster.keeper(MONITOR_LEASE, on_acquire=lambda _lease: None, on_lose=lambda: None)
    keeper.start()
    try:
        keeper.attempted.wait(30)
        if not keeper.holding:
            holder = cluster.leases.holder(MONITOR_LEASE)
            print(json.dumps({"skipped": "another monitor is running", "holder": holder}))
            return 0
        monitor.service.guard = keeper.guard
        counts = monitor.run_once()
    finally:
        cluster.stop()
    print(json.dumps({"read": counts, "last_seen": monitor.last_seen(), "replies": monitor.service.posts.counts()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
