"""Staff bearer tokens (JWT, HS256) and conversation access keys, both derived from the app secret.

The secret is never used directly: each use gets its own sub-key (HMAC of a label), so a
conversation key can never be replayed as a token signature or the other way round.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import jwt

from tickets.users import StaffPrincipal

ISSUER = "mobiliachat"
AUDIENCE = "mobiliachat-api"
ALGORITHM = "HS256"
KEY_PREFIX = "ck1."


def _subkey(secret: str, label: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), label.encode("utf-8"), hashlib.sha256).digest()


class InvalidToken(ValueError):
    """A bearer token that is missing, malformed, forged or expired."""


@dataclass(frozen=True)
class TokenCodec:
    """Issue and verify staff JWTs; the role claim is informative, the DB is re-read on each call."""

    secret: str
    ttl_seconds: int = 3600

    @property
    def _key(self) -> bytes:
        return _subkey(self.secret, "staff-jwt-v1")

    def issue(self, principal: StaffPrincipal, now: float | None = None) -> str:
        """A signed token for ``principal`` valid ``ttl_seconds``."""
        now = time.time() if now is None else now
        claims = {
            "sub": str(principal.user_id),
            "name": principal.username,
            "role": principal.role,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": int(now),
            "exp": int(now) + self.ttl_seconds,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> StaffPrincipal:
        """The principal named by a valid token (InvalidToken else); HS256 only, exp required."""
        if not token or len(token) > 4096:
            raise InvalidToken("missing or oversized token")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
            return StaffPrincipal(int(claims["sub"]), str(claims.get("name", "")), str(claims.get("role", "")))
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidToken(str(exc)) from exc


@dataclass(frozen=True)
class ConversationKeys:
    """Conversation access keys: ``ck1.`` + base64url(HMAC-SHA256(sub-key, conversation id)).

    Nothing is stored: the key is recomputed and compared in constant time. It is returned once,
    when the conversation is created; without it the conversation id alone opens nothing.
    Rotating ``secret_key`` revokes every key (and every staff token).
    """

    secret: str

    def key_for(self, conversation_id: str) -> str:
        """The access key of ``conversation_id``."""
        mac = hmac.new(_subkey(self.secret, "conversation-key-v1"), conversation_id.encode("utf-8"), hashlib.sha256)
        return KEY_PREFIX + base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")

    def check(self, conversation_id: str, key: str | None) -> bool:
        """True when ``key`` opens ``conversation_id``."""
        if not key or len(key) > 128:
            return False
        return hmac.compare_digest(self.key_for(conversation_id).encode("ascii"), key.encode("utf-8", "replace"))
