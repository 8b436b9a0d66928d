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
    rate_limit_login: str = Field("10/minute", description="Staff login attempts per client IP (API and UI).")
    rate_limit_login_account: str = Field(
        "10 per 15 minutes", description="Staff login attempts per account, from any address (lock-out)."
    )
    rate_limit_conversations_client: str = Field(
        "30/hour", description="Conversations opened per client IP (API and chat tab)."
    )
    rate_limit_storage_uri: str = Field(
        "memory://",
        description="Where the limit counters live ('limits' storage URI): memory:// (this process) or a shared "
        "store such as redis://host:6379 for several replicas.",
    )
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Largest request body accepted on /api (413 beyond).")
    db_retry_attempts: int = Field(3, ge=1, le=10, description="Tries of a DB call when the DB is locked/unavailable.")
    retry_after_s: int = Field(2, ge=1, description="Retry-After (seconds) sent with a 503.")
    worker_threads: int = Field(
        8,
        ge=1,
        le=200,
        description="Threads running the synchronous API routes and Gradio callbacks (anyio's default is 40: with "
        "the GIL, more threads than this only queue on it and stretch each request).",
    )
    async_turns: bool = Field(
        True,
        description="Answer API chat messages to open conversations on the event loop (PostgreSQL: asynchronous "
        "connections; a SQLite file: its statements on the loop, a write that would queue in a thread; answers awaited "
        "from the worker processes) instead of a thread each; off keeps the threaded path everywhere.",
    )
    remembered_conversations: int = Field(
        1024,
        ge=0,
        le=100_000,
        description="PostgreSQL, chat turns on the event loop: how many conversations this process remembers as its "
        "last turn in each left them, so that the next turn there skips reading them (its write then checks that "
        "nothing changed, else the turn is answered again from the database); 0 reads every turn.",
    )
    direct_chat_route: bool = Field(
        True,
        description="Serve POST /api/v1/chat/message's valid requests without FastAPI's request handling (same "
        "validation, limits, work and errors; about a fifth less CPU per message in the serving process); off "
        "routes every request through FastAPI.",
    )
    idempotency_retention_hours: int = Field(
        24,
        ge=0,
        le=24 * 366,
        description="How long a chat message's response stays replayable by its Idempotency-Key: each server deletes "
        "older records five minutes after it starts, then every hour (a retry after that is a new message); 0 keeps them "
        "forever.",
    )
    internal_token: SecretStr | None = Field(
        None, description="Shared secret (header X-Internal-Token) letting an internal job call save-context."
    )
    webhook_urls: list[str] = Field(default_factory=list, description="Endpoints receiving the signed webhooks.")
    webhook_secret: SecretStr | None = Field(None, description="HMAC-SHA256 key of the webhook signature.")
    webhook_max_attempts: int = Field(5, ge=1, le=20, description="Delivery attempts per webhook and URL.")
    webhook_backoff_s: float = Field(0.5, gt=0, description="First retry delay; doubles on each failure.")
    webhook_max_backoff_s: float = Field(30.0, gt=0, description="Longest delay between two attempts.")
    webhook_timeout_s: float = Field(5.0, gt=0, description="Seconds per delivery attempt.")

    @field_validator(
        "rate_limit_ip",
        "rate_limit_conversation",
        "rate_limit_login",
        "rate_limit_login_account",
        "rate_limit_conversations_client",
    )
    @classmethod
    def _valid_limit(cls, value: str) -> str:
        parse(value)  # raises ValueError on a malformed limit
        return value

    @field_validator("rate_limit_storage_uri")
    @classmethod
    def _storage_uri(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError(f"rate-limit storage must be a URI such as memory:// (got {value!r})")
        return value

    @field_validator("webhook_urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook URL must be http(s): {url!r}")
        return urls


MIN_SECRET_CHARS = 32
SECRET_COMMAND = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'
SECRET_REQUIRED = (
    "MOBILIA_SECRET_KEY est obligatoire hors développement local (DATABASE_URL n'est pas SQLite) : "
    f"générez-en un avec `{SECRET_COMMAND}`, mettez-le dans l'environnement (ou .env) et gardez le même pour "
    "chaque instance. / MOBILIA_SECRET_KEY is required outside local development (DATABASE_URL is not SQLite): "
    "generate one with the command above, set it in the environment (or .env) and keep it the same on every replica."
)
SECRET_TOO_SHORT = (
    f"MOBILIA_SECRET_KEY est trop court ({MIN_SECRET_CHARS} caractères minimum) : générez-en un avec "
    f"`{SECRET_COMMAND}`. / MOBILIA_SECRET_KEY is too short (at least {MIN_SECRET_CHARS} characters)."
)


class MissingSecretKey(RuntimeError):
    """No usable MOBILIA_SECRET_KEY where one is required; the message says how to make one (FR / EN)."""


def is_sqlite(database_url: str) -> bool:
    """True for the embedded SQLite database (local development), False for a server such as PostgreSQL."""
    from sqlalchemy.engine import make_url

    return make_url(database_url).get_backend_name() == "sqlite"


def app_secret_key(settings, path: Path = DEFAULT_SECRET_FILE) -> str:
    """The app secret: MOBILIA_SECRET_KEY, else (embedded SQLite only) the one kept in ``path``.

    Raises MissingSecretKey when the database is a server (every replica must share one secret that
    survives rebuilds) and none is configured, or when the configured one is too short.
    """
    configured = settings.secret_key.get_secret_value().strip() if settings.secret_key is not None else ""
    if configured:
        if len(configured) < MIN_SECRET_CHARS:
            raise MissingSecretKey(SECRET_TOO_SHORT)
        return configured
    if not is_sqlite(settings.database_url):
        raise MissingSecretKey(SECRET_REQUIRED)
    return load_secret_key(None, path)


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
