"""Settings of the HTTP API (`MOBILIA_API__*`) and the app secret used to sign tokens and keys."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from limits import parse
from pydantic import BaseModel, Field, SecretStr, field_validator

log = logging.getLogger(__name__)

DEFAULT_SECRET_FILE = Path(__file__).resolve().parent.parent / "data" / "secret_key"


class ApiSettings(BaseModel):
    """Rate limits, staff tokens and webhooks of the `/api/v1` HTTP API."""

    token_ttl_minutes: int = Field(60, ge=1, le=24 * 60, description="Lifetime of a staff bearer token (JWT).")
    rate_limit_ip: str = Field("120/minute", description="Requests per client IP on /api/v1 ('limits' syntax).")
    rate_limit_conversation: str = Field("20/minute", description="Chat messages per conversation.")
    rate_limit_login: str = Field("10/minute", description="Login attempts per client IP.")
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Largest request body accepted on /api (413 beyond).")
    db_retry_attempts: int = Field(3, ge=1, le=10, description="Tries of a DB call when the DB is locked/unavailable.")
    retry_after_s: int = Field(2, ge=1, description="Retry-After (seconds) sent with a 503.")
    internal_token: SecretStr | None = Field(
        None, description="Shared secret (header X-Internal-Token) letting an internal job call save-context."
    )
    webhook_urls: list[str] = Field(default_factory=list, description="Endpoints receiving the signed webhooks.")
    webhook_secret: SecretStr | None = Field(None, description="HMAC-SHA256 key of the webhook signature.")
    webhook_max_attempts: int = Field(5, ge=1, le=20, description="Delivery attempts per webhook and URL.")
    webhook_backoff_s: float = Field(0.5, gt=0, description="First retry delay; doubles on each failure.")
    webhook_max_backoff_s: float = Field(30.0, gt=0, description="Longest delay between two attempts.")
    webhook_timeout_s: float = Field(5.0, gt=0, description="Seconds per delivery attempt.")

    @field_validator("rate_limit_ip", "rate_limit_conversation", "rate_limit_login")
    @classmethod
    def _valid_limit(cls, value: str) -> str:
        parse(value)  # raises ValueError on a malformed limit
        return value

    @field_validator("webhook_urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook URL must be http(s): {url!r}")
        return urls


def load_secret_key(configured: SecretStr | None, path: Path = DEFAULT_SECRET_FILE) -> str:
    """The configured secret, else the one persisted in ``path`` (created with mode 0600 on first run)."""
    if configured is not None and configured.get_secret_value():
        return configured.get_secret_value()
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it meanwhile
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    log.info("generated a new secret key in %s", path)  # the path only, never the key
    return key
