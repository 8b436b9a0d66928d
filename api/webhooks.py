"""Signed webhooks: logged in ``webhook_deliveries``, delivered by one background worker with retries.

Each event is one JSON body per configured URL, signed with HMAC-SHA256 of the raw body:
``X-Mobilia-Signature: sha256=<hex>``; ``X-Mobilia-Timestamp`` (unix seconds) repeats the body's
``timestamp`` so receivers can refuse stale replays. Failed attempts (network error or non-2xx)
are retried with exponential backoff (tenacity); the row records attempts and the outcome.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import select
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from api.config import ApiSettings
from storage.db import Database
from storage.models import WEBHOOK_EVENTS, WebhookDelivery, utcnow

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Mobilia-Signature"
TIMESTAMP_HEADER = "X-Mobilia-Timestamp"


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex>`` HMAC of the raw body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """Receiver side check of a signature header (constant time)."""
    return bool(signature) and hmac.compare_digest(sign(secret, body), signature)


class _Failed(Exception):
    """One delivery attempt that did not get a 2xx."""

    def __init__(self, status: int | None, error: str) -> None:
        super().__init__(error)
        self.status = status


class WebhookDispatcher:
    """Queue webhook events and deliver them on a daemon thread; ``start()`` / ``stop()``."""

    def __init__(self, db: Database, settings: ApiSettings) -> None:
        self.db = db
        self.settings = settings
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def enabled(self) -> bool:
        return bool(self.settings.webhook_urls) and self.settings.webhook_secret is not None

    def emit(self, event: str, data: dict[str, Any]) -> list[int]:
        """Log one delivery per URL and queue them; returns the delivery ids (none when disabled)."""
        if event not in WEBHOOK_EVENTS:
            raise ValueError(f"unknown webhook event {event!r}")
        if not self.enabled:
            return []
        now = int(time.time())
        ids = []
        with self.db.session() as session:
            for url in self.settings.webhook_urls:
                body = {"id": uuid.uuid4().hex, "event": event, "timestamp": now, "data": data}
                row = WebhookDelivery(
                    event=event,
                    url=url,
                    payload=json.dumps(body, ensure_ascii=False, default=str),
                    status="pending",
                    attempts=0,
                )
                session.add(row)
                session.flush()
                ids.append(row.id)
        self.start()
        for delivery_id in ids:
            self._queue.put(delivery_id)
        return ids

    def start(self) -> None:
        """Start the worker (idempotent); pending deliveries left by a previous run are queued again."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping.clear()
            with self.db.session() as session:
                pending = session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.status == "pending")).all()
            self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
            self._thread.start()
            for delivery_id in pending:
                self._queue.put(delivery_id)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to finish the delivery in progress and exit."""
        with self._lock:
            thread = self._thread
            self._thread = None
        if thread is None:
            return
        self._stopping.set()
        self._queue.put(None)
        thread.join(timeout)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued delivery was handled (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return False

    def _run(self) -> None:
        with httpx.Client(timeout=self.settings.webhook_timeout_s, follow_redirects=False) as client:
            while True:
                delivery_id = self._queue.get()
                try:
                    if delivery_id is None or self._stopping.is_set():
                        return
                    self._deliver(client, delivery_id)
                except Exception:  # the worker must survive anything one delivery does
                    log.exception("webhook delivery %s crashed", delivery_id)
                finally:
                    self._queue.task_done()

    def _deliver(self, client: httpx.Client, delivery_id: int) -> None:
        with self.db.session() as session:
            row = session.get(WebhookDelivery, delivery_id)
            if row is None or row.status != "pending":
                return
            url, body, event = row.url, row.payload.encode("utf-8"), row.event
        secret = self.settings.webhook_secret.get_secret_value() if self.settings.webhook_secret else ""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "MobiliaChat-Webhooks/1",
            "X-Mobilia-Event": event,
            "X-Mobilia-Delivery": str(delivery_id),
            TIMESTAMP_HEADER: str(json.loads(body)["timestamp"]),
            SIGNATURE_HEADER: sign(secret, body),
        }
        attempts = 0
        last: _Failed | None = None

        def attempt() -> int:
            nonlocal attempts
            attempts += 1
            try:
                response = client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise _Failed(None, f"{type(exc).__name__}: {exc}"[:500]) from exc
            if not 200 <= response.status_code < 300:
                raise _Failed(response.status_code, f"HTTP {response.status_code}")
            return response.status_code

        retrying = Retrying(
            stop=stop_after_attempt(self.settings.webhook_max_attempts),
            wait=wait_exponential(multiplier=self.settings.webhook_backoff_s, max=self.settings.webhook_max_backoff_s),
            retry=retry_if_exception_type(_Failed),
            sleep=lambda seconds: self._stopping.wait(seconds),
            reraise=False,
        )
        status: int | None = None
        try:
            status = retrying(attempt)
        except RetryError as exc:
            last = exc.last_attempt.exception()  # type: ignore[assignment]
        with self.db.session() as session:
            row = session.get(WebhookDelivery, delivery_id)
            row.attempts += attempts
            if last is not None and self._stopping.is_set():
                return  # shutting down: stays pending, resent by the next start()
            if last is None:
                row.status, row.last_status_code, row.last_error, row.delivered_at = "delivered", status, None, utcnow()
            else:
                row.status, row.last_status_code, row.last_error = "failed", last.status, str(last)
        if last is not None:
            log.warning("webhook %s to %s failed after %s attempts: %s", event, url, attempts, last)
