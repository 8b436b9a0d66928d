"""Personal chat links for Mastodon complaints: unguessable tokens stored only as SHA-256 hashes.

``issue(context)`` returns the raw token once (it goes into the public reply); the database
keeps ``sha256(token)`` with the post context (handle, post url, complaint text) and an expiry
24 h later. The public reply is readable by anyone, so a link is single use: ``claim`` marks
the first use with one conditional UPDATE (two concurrent uses cannot both win) and records
the conversation it joined; ``bind`` then gives the browser holding that conversation a secret
(stored hashed). Only a browser presenting it (``is_bound``) may come back through the link.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update

from storage.db import Database
from storage.models import ContactToken, utcnow

TOKEN_BYTES = 32  # 256 bits of randomness, 43 URL-safe characters
MAX_TOKEN_CHARS = 128  # anything longer is not one of ours: refuse before hashing


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a raw token (what the database stores)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ContactLink:
    """A known token's state: its context, whether it expired or was used, and for which conversation."""

    context: dict[str, Any]
    conversation_id: str | None
    expired: bool
    used: bool
    binding_hash: str | None


class ContactTokenService:
    """Issue, look up and claim contact tokens; ``clock`` is injectable so tests can move time."""

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

    def lookup(self, token: str | None) -> ContactLink | None:
        """The state of a token, or None if it is unknown or malformed."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        with self.db.session() as session:
            row = session.get(ContactToken, hash_token(token))
            if row is None:
                return None
            return ContactLink(
                context=dict(row.context),
                conversation_id=row.conversation_id,
                expired=row.expires_at <= self.clock(),
                used=row.used_at is not None,
                binding_hash=row.binding_hash,
            )

    def resolve(self, token: str | None) -> dict[str, Any] | None:
        """Return the context of a valid (known, unexpired) token, used or not; None otherwise."""
        link = self.lookup(token)
        return None if link is None or link.expired else link.context

    def claim(self, token: str, conversation_id: str) -> bool:
        """First use: mark the token used for ``conversation_id``; False when unknown, expired or already used."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return False
        now = self.clock()
        stmt = (
            update(ContactToken)
            .where(
                ContactToken.token_hash == hash_token(token),
                ContactToken.used_at.is_(None),
                ContactToken.expires_at > now,
            )
            .values(used_at=now, conversation_id=conversation_id)
        )
        with self.db.session() as session:
            return session.execute(stmt).rowcount == 1

    def bind(self, token: str, conversation_id: str) -> str | None:
        """Hand out the binding secret of a claimed token, once, to the holder of its conversation.

        The caller proves it holds ``conversation_id`` (a server-side chat session); a token used
        through the API, or already bound, gives nothing.
        """
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        binding = secrets.token_urlsafe(TOKEN_BYTES)
        stmt = (
            update(ContactToken)
            .where(
                ContactToken.token_hash == hash_token(token),
                ContactToken.conversation_id == conversation_id,
                ContactToken.used_at.is_not(None),
                ContactToken.binding_hash.is_(None),
            )
            .values(binding_hash=hash_token(binding))
        )
        with self.db.session() as session:
            return binding if session.execute(stmt).rowcount == 1 else None

    @staticmethod
    def is_bound(link: ContactLink | None, binding: str | None) -> bool:
        """True when ``binding`` is the secret handed out at the link's first use (and it is still valid)."""
        if link is None or link.expired or not link.used or not link.binding_hash:
            return False
        if not isinstance(binding, str) or not binding or len(binding) > MAX_TOKEN_CHARS:
            return False
        return hmac.compare_digest(link.binding_hash, hash_token(binding))
