"""FastAPI factory of the `/api/v1` HTTP API: wiring, error handlers, limits and auth dependencies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from api.config import ApiSettings, app_secret_key
from api.idempotency import purge_expired
from api.security import ConversationKeys, InvalidToken, TokenCodec
from api.webhooks import WebhookDispatcher
from guard import RateLimited, client_address
from storage import AsyncTurnRepository, SqliteTurnRepository
from tickets.users import AccessDenied, StaffPrincipal, require

log = logging.getLogger(__name__)
T = TypeVar("T")
PREFIX = "/api/v1"
_FRENCH_ERRORS = {
    "missing": "champ obligatoire",
    "string_too_long": "texte trop long",
    "string_too_short": "texte vide ou trop court",
    "string_pattern_mismatch": "format invalide",
    "string_type": "texte attendu",
    "json_invalid": "JSON invalide",
    "model_attributes_type": "objet JSON attendu",
    "dict_type": "objet JSON attendu",
    "extra_forbidden": "champ inconnu",
    "literal_error": "valeur non autorisée",
    "int_parsing": "nombre entier attendu",
    "bool_parsing": "booléen attendu",
}
DB_ERRORS = (OperationalError, PoolTimeout)


class DatabaseUnavailable(Exception):
    """The database stayed locked or unreachable after the retries."""


def turns_on_loop(api: ApiSettings, limits_local: bool, in_memory_database: bool) -> bool:
    """Whether a server answers chat turns on its event loop (``ApiContext.open_turns``): ``async_turns`` on, the
    limit counters in its own memory, and a database that is not a private in-memory SQLite one."""
    return api.async_turns and limits_local and not in_memory_database


class ApiContext:
    """What the route handlers share: services, codecs, limits, webhooks and the DB retry policy."""

    def __init__(self, services: Any, secret: str) -> None:
        self.services = services
        self.settings = services.settings
        api = self.settings.api
        self.tokens = TokenCodec(secret, api.token_ttl_minutes * 60)
        self.keys = ConversationKeys(secret)
        self.limits = services.limits  # shared with the Gradio events (Services builds it once)
        cluster = getattr(services, "cluster", None)
        self.webhooks = WebhookDispatcher(services.db, api, worker=cluster.replica if cluster else None)
        self.turns: AsyncTurnRepository | SqliteTurnRepository | None = None  # set by open_turns() while the server runs
        self.chat_message: Any = None  # the chat message route's model and work (set by api.routes.chat_router)

    async def open_turns(self) -> None:
        """Answer the chat messages of open conversations on the event loop, where it pays (see ``async_turns``).

        With the limit counters in this process' memory, a turn then holds no thread: on PostgreSQL its two
        statements are awaited on psycopg's asynchronous connections, on a SQLite file they run on the loop
        (SQLite is in this process; a write that would queue goes to a thread), and its answer is awaited
        from the worker processes. Under 50 concurrent customers the threads' hand-offs and contention cost
        the serving process about as much as the turn's own work. A shared limit store (network calls to
        count) and an in-memory SQLite database keep the threaded path.
        """
        db, api = self.services.db, self.settings.api
        if not turns_on_loop(api, self.limits_local, db.is_memory):
            return
        if db.is_sqlite:
            self.turns = SqliteTurnRepository(db)
            log.info("chat turns of the API answered on the event loop (SQLite)")
            return
        pool = await db.open_async_pool(self.settings.database_pool_size or api.worker_threads + 4)
        self.turns = AsyncTurnRepository(db, pool, remember=api.remembered_conversations)
        log.info("chat turns of the API answered on the event loop (PostgreSQL, asynchronous connections)")

    async def close_turns(self) -> None:
        turns, self.turns = self.turns, None
        if turns is not None:
            await turns.close()

    def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run an idempotent DB call, retrying briefly while the DB is locked/unavailable (503 after)."""
        retrying = Retrying(
            stop=stop_after_attempt(self.settings.api.db_retry_attempts),
            wait=wait_exponential(multiplier=0.05, max=0.5),
            retry=retry_if_exception_type(DB_ERRORS),
            reraise=True,
        )
        try:
            return retrying(fn, *args, **kwargs)
        except DB_ERRORS as exc:
            log.warning("database unavailable: %s", type(exc).__name__)
            raise DatabaseUnavailable from exc

    def client_ip(self, request: Request) -> str:
        """The client's address (forwarded headers only from MOBILIA_TRUSTED_PROXIES)."""
        return client_address(request, self.settings.trusted_proxies)

    def limit_ip(self, request: Request) -> None:
        """Dependency: per-IP limit of every /api/v1 call."""
        self.limits.hit("ip", self.client_ip(request))

    async def _limit_ip_in_loop(self, request: Request) -> None:
        self.limit_ip(request)

    def ip_limit_dependency(self) -> Callable[[Request], Any]:
        """``limit_ip`` as a dependency: on the event loop when the counters are in this process' memory.

        FastAPI runs a sync dependency in the thread pool, a second thread hop per request that costs
        more than counting in memory; a shared store (Redis) is network I/O and stays in the pool.
        """
        return self._limit_ip_in_loop if self.limits_local else self.limit_ip

    @property
    def limits_local(self) -> bool:
        """Whether the limit counters are in this process' memory (no network call to count)."""
        return getattr(self.limits, "storage_uri", "memory://").startswith("memory://")

    def staff(self, area: str) -> Callable[[Request], StaffPrincipal]:
        """Dependency factory: the bearer token's principal, re-read from the DB, allowed in ``area``."""

        def dependency(request: Request) -> StaffPrincipal:
            scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _unauthorized("Authentification requise : envoyez un jeton « Authorization: Bearer ».")
            try:
                claimed = self.tokens.verify(token.strip())
            except InvalidToken:
                raise _unauthorized("Jeton invalide ou expiré : reconnectez-vous.") from None
            principal = self.db(self.services.staff.current, claimed)
            if principal is None:
                raise _unauthorized("Compte inconnu ou désactivé.")
            try:
                return require(principal, area)
            except AccessDenied as exc:
                raise HTTPException(403, str(exc)) from None

        return dependency


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def _validation_detail(exc: RequestValidationError) -> list[dict]:
    out = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ()) if part != "body"]
        msg = _FRENCH_ERRORS.get(error.get("type", ""), "valeur invalide")
        ctx = error.get("ctx") or {}
        if error.get("type") == "string_too_long" and "max_length" in ctx:
            msg = f"texte trop long (maximum {ctx['max_length']} caractères)"
        out.append({"loc": loc, "msg": msg, "type": error.get("type")})
    return out


def _install_handlers(app: FastAPI, context: ApiContext) -> None:
    retry_after = str(context.settings.api.retry_after_s)

    @app.exception_handler(RateLimited)
    async def _rate_limited(_request: Request, exc: RateLimited) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, 429, headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_detail(exc)
        fields = ", ".join(".".join(e["loc"]) + " : " + e["msg"] for e in errors[:5])
        return JSONResponse({"detail": f"Requête invalide ({fields}).", "errors": errors}, 422)

    async def _unavailable(_request: Request, _exc: Exception) -> JSONResponse:
        detail = "Service momentanément indisponible : réessayez dans quelques secondes."
        return JSONResponse({"detail": detail}, 503, headers={"Retry-After": retry_after})

    for kind in (DatabaseUnavailable, *DB_ERRORS, DBAPIError):
        app.add_exception_handler(kind, _unavailable)

    if context.settings.api.direct_chat_route:  # inside BodyLimit: an oversized body is still a 413 first
        from api.fastpath import ChatMessageFastPath

        app.add_middleware(ChatMessageFastPath, api=app, context=context, path=PREFIX + "/chat/message")
    app.add_middleware(BodyLimit, max_body=context.settings.api.max_body_bytes)


class BodyLimit:
    """413 for an /api/ request whose Content-Length is over ``max_body`` (or not a number), before it is read.

    A plain ASGI middleware: ``@app.middleware("http")`` (Starlette's BaseHTTPMiddleware) runs every
    request, the Gradio UI's included, through an extra task and memory streams.
    """

    def __init__(self, app: Any, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            length = next((value for name, value in scope["headers"] if name == b"content-length"), None)
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                await JSONResponse({"detail": "Requête trop volumineuse."}, 413)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_api(services: Any, *, secret_key: str | None = None) -> FastAPI:
    """The FastAPI app (`/api/v1`, `/docs`); the Gradio UI is mounted on it by ``app.py``."""
    from api.routes import chat_router, ops_router, staff_router

    settings = services.settings
    secret = secret_key or app_secret_key(settings)
    context = ApiContext(services, secret)

    def publish(_event: str, _ticket) -> None:
        """A ticket change was committed with its webhooks (outbox): send them now, not at the next poll."""
        context.webhooks.wake()

    # Ticket changes from the API and the Gradio console alike write their webhooks in their own transaction
    # (no hook when no webhook is configured: a chat turn's repeated escalation then needs no ORM session).
    services.tickets.outbox = context.webhooks.write_ticket if context.webhooks.enabled else None
    context.webhooks.start()  # deliveries left by an earlier run (or another replica) go out too
    services.tickets.subscribe(publish)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api.worker_threads
        await context.open_turns()
        retention = settings.api.idempotency_retention_hours
        purge = asyncio.create_task(purge_expired(services.chat.idempotency, retention)) if retention else None
        try:
            yield
        finally:
            if purge is not None:
                purge.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purge
            await context.close_turns()
            services.tickets.unsubscribe(publish)
            context.webhooks.stop()

    app = FastAPI(
        title="MobiliaChat API",
        version="1.0.0",
        description="Chat client, tickets, analytics et contexte Mastodon de MobiliaChat.",
        lifespan=lifespan,
    )
    app.state.api = context
    _install_handlers(app, context)
    limited = [Depends(context.ip_limit_dependency())]
    app.include_router(ops_router(context), prefix=PREFIX)
    app.include_router(chat_router(context), prefix=PREFIX, dependencies=limited)
    app.include_router(staff_router(context), prefix=PREFIX, dependencies=limited)
    return app
