"""Routers of `/api/v1`: customer chat, staff (auth, tickets, analytics, Mastodon) and operations."""

from api.routes.chat import chat_router
from api.routes.ops import ops_router
from api.routes.staff import staff_router

__all__ = ["chat_router", "ops_router", "staff_router"]
