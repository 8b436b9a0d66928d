"""POST /api/v1/chat/message served without FastAPI's request handling (``ApiSettings.direct_chat_route``).

The chat message is the API's hot path. A fifth of its CPU (0.12 of 0.58 ms per message, measured
sequentially over ASGI) went to FastAPI and Starlette around the route's own work: matching the path
against every route, reading the body into a ``Request``, solving the route's header parameters and its
per-IP limit dependency again for each request, the exception and exit-stack middlewares. On a two-core
machine that CPU is taken from the answer workers.

This ASGI middleware serves the route itself when the request has the plain shape of one: a JSON body
the route's model accepts and well-formed headers, each given once. Then it counts the per-IP limit
and runs the route's own work (``ChatMessageRoute.handle``, the function the FastAPI route calls), and
renders its exceptions with the application's exception handlers, as Starlette would. Any other
request (invalid, unusual or another path) goes to FastAPI unchanged, its body replayed, so errors and
their French messages come from one place. It sits inside ``BodyLimit`` (413 first, as before).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from api.idempotency import KEY_PATTERN
from api.routes.chat import AUTHORIZATION_MAX, CONVERSATION_KEY_MAX

_HEADERS = {
    b"content-type": None,
    b"x-conversation-key": CONVERSATION_KEY_MAX,
    b"authorization": AUTHORIZATION_MAX,
    b"idempotency-key": None,
}
_KEY = re.compile(KEY_PATTERN)


class ChatMessageFastPath:
    """ASGI middleware: the chat message route's plain requests, served directly (see the module)."""

    def __init__(self, app: Any, api: Any, context: Any, path: str) -> None:
        self.app = app
        self.api = api  # the FastAPI application: its exception handlers
        self.context = context  # ApiContext; ``context.chat_message`` is set by the chat router
        self.path = path

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        route = self.context.chat_message
        if route is None or scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client left while sending
            return
        parsed = _parse(scope["headers"], body, route.model)
        if parsed is None:  # not the plain shape: FastAPI answers it (a 422 with its French detail, typically)
            await self.app(scope, _replaying(body, receive), send)
            return
        request = Request(scope, receive)
        try:
            await self._limit_ip(request)
            response = await route.handle(parsed.body, request, parsed.conversation_key, parsed.authorization,
                                          parsed.idempotency_key)  # fmt: skip
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # ServerErrorMiddleware: 500, logged
            response = handler(request, exc)
            if not isinstance(response, Response):
                response = await response
        await response(scope, receive, send)

    async def _limit_ip(self, request: Request) -> None:
        """The per-IP limit of every /api/v1 call, run as FastAPI runs the routers' dependency (a sync one in a thread)."""
        limit = self.context.ip_limit_dependency()
        if inspect.iscoroutinefunction(limit):
            await limit(request)
        else:
            await run_in_threadpool(limit, request)

    def _handler(self, exc: Exception) -> Callable | None:
        """The application's handler of ``exc``, looked up as Starlette's ExceptionMiddleware does."""
        handlers = self.api.exception_handlers
        if isinstance(exc, StarletteHTTPException) and exc.status_code in handlers:
            return handlers[exc.status_code]
        return next((handlers[kind] for kind in type(exc).__mro__ if kind in handlers), None)


class _Parsed:
    __slots__ = ("authorization", "body", "conversation_key", "idempotency_key")

    def __init__(self, body: Any, headers: dict[bytes, str]) -> None:
        self.body = body
        self.conversation_key = headers.get(b"x-conversation-key")
        self.authorization = headers.get(b"authorization")
        self.idempotency_key = headers.get(b"idempotency-key")


def _parse(raw_headers: list[tuple[bytes, bytes]], body: bytes, model: type) -> _Parsed | None:
    """The validated body and headers, or None when FastAPI should answer (anything invalid or unusual)."""
    headers: dict[bytes, str] = {}
    for name, value in raw_headers:
        if name in _HEADERS:
            if name in headers:
                return None  # a header given twice
            longest = _HEADERS[name]
            if longest is not None and len(value) > longest:
                return None
            headers[name] = value.decode("latin-1")
    media_type = headers.get(b"content-type", "").partition(";")[0].strip().lower()
    key = headers.get(b"idempotency-key")
    if media_type != "application/json" or (key is not None and not _KEY.fullmatch(key)):
        return None
    try:
        return _Parsed(model.model_validate(json.loads(body)), headers)
    except (ValueError, ValidationError):  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None


async def _read_body(receive: Callable) -> bytes | None:
    """The whole request body (None if the client disconnected first)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Callable) -> Callable:
    """A ``receive`` that gives the body already read, then whatever the connection sends next."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> dict:
        return pending.pop() if pending else await receive()

    return replay
