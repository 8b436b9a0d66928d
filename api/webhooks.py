"""Signed webhooks through a transactional outbox (``webhook_deliveries``), delivered by every replica.

Each event is one JSON body per configured URL, signed with HMAC-SHA256 of the raw body:
``X-Mobilia-Signature: sha256=<hex>``; ``X-Mobilia-Timestamp`` (unix seconds) repeats the body's
``timestamp`` so receivers can refuse stale replays; ``X-Mobilia-Delivery`` is the row id, the
same on every attempt (a receiver drops repeats by it).

The rows are written by ``TicketService`` in the same transaction as the ticket change they
announce (``write``): a change is never committed without its webhooks, nor the reverse. Each
replica runs a worker that claims due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite
serialises writers) for a while, makes one attempt per row and records the outcome. A failed
attempt (network error or non-2xx) is rescheduled with exponential backoff in the row itself,
so retries survive restarts and any replica may make the next one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from api.config import ApiSettings
from storage.db import Database
from storage.models import WEBHOOK_EVENTS, Ticket, WebhookDelivery, utcnow

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Mobilia-Signature"
TIMESTAMP_HEADER = "X-Mobilia-Timestamp"


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex>`` HMAC of the raw body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """Receiver side check of a signature header (constant time)."""
    return bool(signature) and hmac.compare_digest(sign(secret, body), signature)


CLAIM_BATCH = 20  # rows one replica claims per round
CLAIM_MARGIN_S = 30.0  # a claim outlives the attempt's timeout by this much (then another replica may retry)


class WebhookDispatcher:
    """Outbox of webhook deliveries: ``write`` in the caller's transaction, a worker per replica sends them."""

    def __init__(self, db: Database, settings: ApiSettings, *, worker: str | None = None, poll_s: float = 1.0) -> None:
        self.db = db
        self.settings = settings
        self.worker = (worker or f"replica-{uuid.uuid4().hex[:8]}")[:128]
        self.poll_s = poll_s
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake = threading.Event()

    @property
    def enabled(self) -> bool:
        return bool(self.settings.webhook_urls) and self.settings.webhook_secret is not None

    # --- outbox -----------------------------------------------------------------------------

    def write(self, session: Session, event: str, data: dict[str, Any]) -> list[WebhookDelivery]:
        """Add one pending delivery per URL to the caller's transaction (none when disabled)."""
        if event not in WEBHOOK_EVENTS:
            raise ValueError(f"unknown webhook event {event!r}")
        if not self.enabled:
            return []
        now = utcnow()
        rows = []
        for url in self.settings.webhook_urls:
            body = {"id": uuid.uuid4().hex, "event": event, "timestamp": int(now.timestamp()), "data": data}
            payload = json.dumps(body, ensure_ascii=False, default=str)
            row = WebhookDelivery(event=event, url=url, payload=payload, status="pending", attempts=0,
                                  created_at=now, next_attempt_at=now)  # fmt: skip
            session.add(row)
            rows.append(row)
        return rows

    def write_ticket(self, session: Session, event: str, ticket: Ticket) -> None:
        """The outbox hook of TicketService: a ticket event, in the ticket change's own transaction."""
        if not self.enabled:
            return
        from api.routes.chat import _ticket_data

        data: dict[str, Any] = {"ticket": _ticket_data(ticket)}
        if event == "conversation.escalated":
            data["conversation_id"] = ticket.conversation_id
        self.write(session, event, data)

    def emit(self, event: str, data: dict[str, Any]) -> list[int]:
        """Write deliveries in a transaction of their own and wake the worker; returns their ids."""
        with self.db.session() as session:
            rows = self.write(session, event, data)
            session.flush()
            ids = [row.id for row in rows]
        if ids:
            self.wake()
        return ids

    # --- worker -----------------------------------------------------------------------------

    def wake(self) -> None:
        """Something was just committed: look at the outbox now rather than at the next poll."""
        if self.enabled:
            self.start()
            self._wake.set()

    def start(self) -> None:
        """Start this replica's worker (idempotent); rows left pending by earlier runs are picked up."""
        if not self.enabled:
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the attempt in progress and exit; unfinished rows stay in the outbox for any replica."""
        with self._lock:
            thread = self._thread
            self._thread = None
        if thread is None:
            return
        self._stopping.set()
        self._wake.set()
        thread.join(timeout)

    def pending(self) -> int:
        """Deliveries still waiting (due now or scheduled for a retry)."""
        with self.db.session() as session:
            return session.scalar(select(func.count()).where(WebhookDelivery.status == "pending")) or 0

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no delivery is pending any more (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending() == 0:
                return True
            self._wake.set()
            time.sleep(0.05)
        return False

    def run_once(self, client: httpx.Client | None = None) -> int:
        """Claim the due deliveries and make one attempt at each; returns how many were attempted."""
        claimed = self._claim(CLAIM_BATCH)
        if not claimed:
            return 0
        own = client is None
        client = client or httpx.Client(timeout=self.settings.webhook_timeout_s, follow_redirects=False)
        try:
            for delivery in claimed:
                if self._stopping.is_set():
                    self._unclaim(delivery["id"])
                    continue
                self._attempt(client, delivery)
        finally:
            if own:
                client.close()
        return len(claimed)

    def _run(self) -> None:
        with httpx.Client(timeout=self.settings.webhook_timeout_s, follow_redirects=False) as client:
            while not self._stopping.is_set():
                try:
                    done = self.run_once(client)
                except Exception as exc:  # the database may be briefly away: the worker must survive it
                    log.warning("webhook outbox round failed: %s", type(exc).__name__)
                    done = 0
                if not done:
                    self._wake.wait(self.poll_s)
                    self._wake.clear()

    def _claim(self, limit: int) -> list[dict[str, Any]]:
        """Mark up to ``limit`` due rows as this worker's for a while; no other worker takes them meanwhile."""
        now = utcnow()
        stmt = (
            select(WebhookDelivery)
            .where(
                WebhookDelivery.status == "pending",
                or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= now),
                or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
            )
            .order_by(WebhookDelivery.id)
            .limit(limit)
        )
        if not self.db.is_sqlite:
            stmt = stmt.with_for_update(skip_locked=True)  # concurrent workers skip each other's rows
        until = now + timedelta(seconds=self.settings.webhook_timeout_s + CLAIM_MARGIN_S)
        with self.db.session() as session:
            rows = list(session.scalars(stmt))
            for row in rows:
                row.claimed_by, row.claimed_until = self.worker, until
            return [{"id": r.id, "url": r.url, "payload": r.payload, "event": r.event, "attempts": r.attempts}
                    for r in rows]  # fmt: skip

    def _unclaim(self, delivery_id: int) -> None:
        with self.db.session() as session:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, WebhookDelivery.claimed_by == self.worker)
                .values(claimed_by=None, claimed_until=None)
            )

    def _attempt(self, client: httpx.Client, delivery: dict[str, Any]) -> None:
        """One POST; then delivered, rescheduled with backoff, or failed after the last attempt."""
        body = delivery["payload"].encode("utf-8")
        secret = self.settings.webhook_secret.get_secret_value() if self.settings.webhook_secret else ""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "MobiliaChat-Webhooks/1",
            "X-Mobilia-Event": delivery["event"],
            "X-Mobilia-Delivery": str(delivery["id"]),
            TIMESTAMP_HEADER: str(json.loads(body)["timestamp"]),
            SIGNATURE_HEADER: sign(secret, body),
        }
        status: int | None = None
        error: str | None = None
        try:
            response = client.post(delivery["url"], content=body, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        attempts = delivery["attempts"] + 1
        now = utcnow()
        values: dict[str, Any] = {"attempts": attempts, "last_status_code": status, "last_error": error,
                                  "claimed_by": None, "claimed_until": None}  # fmt: skip
        if error is None:
            values |= {"status": "delivered", "delivered_at": now}
        elif attempts >= self.settings.webhook_max_attempts:
            values["status"] = "failed"
            log.warning("webhook %s to %s failed after %s attempts: %s", delivery["event"], delivery["url"],
                        attempts, error)  # fmt: skip
        else:
            delay = min(self.settings.webhook_max_backoff_s, self.settings.webhook_backoff_s * 2 ** (attempts - 1))
            values["next_attempt_at"] = now + timedelta(seconds=delay)
        with self.db.session() as session:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery["id"], WebhookDelivery.claimed_by == self.worker)
                .values(**values)
            )
