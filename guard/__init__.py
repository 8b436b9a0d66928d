"""Abuse guards shared by the HTTP API and the Gradio UI: one rate limiter, one client address."""

from __future__ import annotations

from guard.client import client_address
from guard.ratelimit import RateLimited, RateLimits

__all__ = ["RateLimited", "RateLimits", "client_address"]
