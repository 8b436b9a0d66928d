"""Mastodon monitor settings, shared by the app (``settings.Settings.mastodon``) and ``python -m social.monitor``.

Environment variables: ``MOBILIA_MASTODON__INSTANCE_URL``, ``__ACCESS_TOKEN``, ``__HASHTAGS``
(comma-separated), ``__REPLY_MODE`` (off | review | auto) and the tuning knobs below. The monitor
is enabled when both the instance URL and the access token are set. The token is a ``SecretStr``:
it is masked in reprs, logs and the UI.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

ReplyMode = Literal["off", "review", "auto"]


class MastodonSettings(BaseModel):
    """Where to listen, what to follow and how to answer complaints on Mastodon."""

    instance_url: str | None = Field(
        None, description="Base URL of the Mastodon instance, e.g. https://mastodon.social."
    )
    access_token: SecretStr | None = Field(None, description="Access token of the support account (never logged).")
    hashtags: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["Free", "FreeMobile", "SAVFree"],
        description="Hashtags followed live (comma-separated in the environment, without '#').",
    )
    keywords: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["free mobile", "freemobile", "sav free", "@free"],
        description="Phrases that make a post relevant even without a followed hashtag.",
    )
    reply_mode: ReplyMode = Field(
        "review", description="off: store only; review: agents approve replies; auto: reply at once."
    )
    complaint_threshold: float = Field(
        0.35, ge=0, le=1, description="Complaint score from which a post is a complaint."
    )
    token_ttl_hours: float = Field(24.0, gt=0, description="Lifetime of the personal chat link sent in a reply.")
    catch_up_page_size: int = Field(40, ge=1, le=40, description="Statuses per REST page when catching up.")
    catch_up_max_pages: int = Field(
        25, ge=1, description="Pages read per timeline and catch-up (bounds a long outage)."
    )
    catch_up_max_age_hours: float = Field(
        24.0, gt=0, description="Posts older than this are ignored when catching up (no reply to stale complaints)."
    )
    ratelimit_method: Literal["wait", "pace"] = Field(
        "pace", description="Mastodon.py rate-limit strategy: pace spreads calls, wait sleeps when the quota is spent."
    )
    request_timeout: float = Field(30.0, gt=0, description="Timeout of REST calls, in seconds.")
    stream_timeout: float = Field(
        60.0, gt=0, description="Read timeout of a streaming connection (servers send heartbeats more often)."
    )
    backoff_initial: float = Field(1.0, gt=0, description="First wait before reconnecting after a stream error (s).")
    backoff_max: float = Field(60.0, gt=0, description="Longest wait between reconnection attempts (s).")

    @field_validator("hashtags", "keywords", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        """Accept 'a,b,c' (environment) as well as a list; hashtags lose any leading '#'."""
        if isinstance(value, str):
            value = [part for part in value.split(",")]
        if isinstance(value, list):
            return [str(part).strip().lstrip("#") for part in value if str(part).strip().lstrip("#")]
        return value

    @property
    def enabled(self) -> bool:
        """True when both the instance URL and the access token are configured."""
        return bool(self.instance_url and self.access_token and self.access_token.get_secret_value())

    def token(self) -> str:
        """The raw access token, for the Mastodon client only."""
        if self.access_token is None:
            raise ValueError("Mastodon access token is not configured")
        return self.access_token.get_secret_value()
