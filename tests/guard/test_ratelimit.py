"""The shared limiter: named limits, French messages with the wait, storage chosen by URI."""

from __future__ import annotations

import pytest

from guard.ratelimit import LOCKED_OUT, Limit, PrunedMemoryStorage, RateLimited, RateLimits, minutes_text, wait_text


def test_over_the_limit_raises_with_retry_after_and_a_french_message() -> None:
    limits = RateLimits({"conversation": Limit("2/minute", "Patientez {wait}.")})
    limits.hit("conversation", "c1")
    limits.hit("conversation", "c1")
    with pytest.raises(RateLimited) as caught:
        limits.hit("conversation", "c1")
    assert 1 <= caught.value.retry_after <= 60
    assert caught.value.detail == f"Patientez {wait_text(caught.value.retry_after)}."
    limits.hit("conversation", "c2")  # another key has its own counter


def test_login_counts_per_client_and_per_account_with_a_lock_out_message() -> None:
    limits = RateLimits({"login": Limit("5/minute", LOCKED_OUT), "login_account": Limit("3 per 15 minutes", LOCKED_OUT)})
    for client in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        limits.login(client, " Alice ")
    with pytest.raises(RateLimited) as caught:
        limits.login("10.0.0.4", "alice")  # a fresh address, the same account
    assert caught.value.detail.startswith("Trop de tentatives de connexion… réessayez dans ")
    assert caught.value.detail.endswith("minutes.") and caught.value.retry_after > 14 * 60
    limits.login("10.0.0.4", "bob")  # other accounts are not locked


def test_from_settings_builds_every_limit_on_the_configured_storage() -> None:
    from api.config import ApiSettings

    limits = RateLimits.from_settings(ApiSettings(rate_limit_conversations_client="1/hour"))
    assert limits.storage_uri == "memory://"
    limits.hit("conversations", "127.0.0.1")
    with pytest.raises(RateLimited, match="Trop de conversations ouvertes"):
        limits.hit("conversations", "127.0.0.1")
    limits.reset()
    limits.hit("conversations", "127.0.0.1")


def test_storage_is_a_uri_from_settings() -> None:
    from pydantic import ValidationError

    from api.config import ApiSettings

    with pytest.raises(ValidationError):
        ApiSettings(rate_limit_storage_uri="localhost:6379")
    with pytest.raises(ValidationError):
        ApiSettings(rate_limit_login_account="many")
    with pytest.raises(Exception, match="nope"):
        RateLimits({"ip": "1/second"}, storage_uri="nope://x")


@pytest.mark.parametrize(
    ("seconds", "words", "minutes"),
    [(1, "1 seconde", "1 minute"), (45, "45 secondes", "1 minute"), (60, "1 minute", "1 minute"),
     (61, "2 minutes", "2 minutes"), (900, "15 minutes", "15 minutes")],
)  # fmt: skip
def test_waits_in_french_words(seconds: int, words: str, minutes: str) -> None:
    assert wait_text(seconds) == words and minutes_text(seconds) == minutes


def test_in_process_counting_starts_no_thread_per_hit_and_still_prunes_expired_entries() -> None:
    limits = RateLimits({"ip": Limit("1000/minute")})
    storage = limits._storage
    assert isinstance(storage, PrunedMemoryStorage)
    timer = storage.timer
    for n in range(300):
        limits.hit("ip", f"10.0.0.{n % 30}")
    assert storage.timer is timer  # the stock storage would have started new timer threads
    assert len(storage.events) == 30
    for events in storage.events.values():  # every entry expired (as if a minute had passed)
        for entry in events:
            entry.expiry = entry.atime = 0.0
    storage._next_prune = 0.0  # the next hit is due to prune
    limits.hit("ip", "10.0.0.99")
    assert sum(len(events) for events in storage.events.values()) == 1  # only the new hit is left
