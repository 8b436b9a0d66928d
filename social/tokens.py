"""Personal chat links for Mastodon complaints: unguessable tokens stored only as SHA-256 hashes.

``issue(context)`` returns the raw token once (it goes into the public reply); the database
keeps ``sha256(token)`` with the post context (handle, post url, complaint text) and an expiry
24 h later. ``resolve(token)`` gives the context back, or None when unknown or expired. A token
may be resolved several times while valid (the customer can reload the page).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from storage.db import Database
from storage.models import ContactToken, utcnow

TOKEN_BYTES = 32  # 256 bits of randomness, 43 URL-safe characters
MAX_TOKEN_CHARS = 128  # anything longer is not one of ours: refuse before hashing


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a raw token (what the database stores)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ContactTokenService:
    """Issue and resolve contact tokens; ``clock`` is injectable so tests can move time."""

    def __init__(
        self, db: Database, *, ttl: timedelta = timedelta(hours=24), clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.db = db
        self.ttl = ttl
        self.clock = clock

    def issue(self, context: dict[str, Any], conversation_id: str | None = None) -> str:
        """Store a new token for ``context`` and return the raw token (never stored)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self.clock()
        with self.db.session() as session:
            session.add(
                ContactToken(
                    token_hash=hash_token(token),
                    conversation_id=conversation_id,
                    context=dict(context),
                    created_at=now,
                    expires_at=now + self.ttl,
                )
            )
        return token

    def resolve(self, token: str | None) -> dict[str, Any] | None:
        """Return the context of a valid token, or None if it is unknown, malformed or expired."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        with self.db.session() as session:
            row = session.get(ContactToken, hash_token(token))
            if row is None or row.expires_at <= self.clock():
                return None
            return dict(row.context)

    def mark_used(self, token: str, conversation_id: str) -> None:
        """Record that the link opened a chat conversation (first use time kept)."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return
        with self.db.session() as session:
            row = session.get(ContactToken, hash_token(token))
            if row is not None:
                row.conversation_id = conversation_id
                row.used_at = row.used_at or self.clock()
