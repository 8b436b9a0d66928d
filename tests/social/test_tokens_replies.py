"""Contact tokens (hashed, 24 h expiry with an injected clock) and French reply templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from social.replies import LINK_MARKER, MAX_CHARS, chat_link, draft_reply, fill_link
from social.tokens import ContactTokenService, hash_token
from storage.models import ContactToken

CONTEXT = {"handle": "@alice", "post_url": "https://m.example/@alice/1", "complaint": "Plus de réseau !!"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_token_resolves_until_it_expires_after_24h(db) -> None:
    clock = Clock()
    tokens = ContactTokenService(db, clock=clock)
    token = tokens.issue(CONTEXT)
    assert len(token) >= 43
    assert tokens.resolve(token) == CONTEXT
    clock.now += timedelta(hours=23, minutes=59)
    assert tokens.resolve(token) == CONTEXT
    clock.now += timedelta(minutes=1)
    assert tokens.resolve(token) is None


def test_token_is_stored_hashed_and_unknown_tokens_fail(db) -> None:
    tokens = ContactTokenService(db)
    token = tokens.issue(CONTEXT)
    with db.session() as session:
        stored = session.scalars(select(ContactToken.token_hash)).all()
    assert stored == [hash_token(token)] and token not in stored
    assert tokens.resolve(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert tokens.resolve("") is None and tokens.resolve("x" * 10_000) is None
    assert tokens.issue(CONTEXT) != token


def test_replies_per_urgency_mention_link_tags_and_fit_500_chars() -> None:
    link = chat_link("https://chat.example.fr/", "t" * 43)
    assert link == "https://chat.example.fr/?token=" + "t" * 43
    texts = {
        u: fill_link(draft_reply("alice@remote.example", u), link, "alice@remote.example")
        for u in ("LOW", "MEDIUM", "HIGH")
    }
    assert len(set(texts.values())) == 3
    for text in texts.values():
        assert text.startswith("@alice@remote.example ")
        assert link in text and "#SAVFree #Support" in text and LINK_MARKER not in text
        assert len(text) <= MAX_CHARS
    assert "4 h" in texts["HIGH"] and "24 h" in texts["MEDIUM"] and "48 h" in texts["LOW"]
    long_link = chat_link("https://chat.example.fr/" + "x" * 250, "t" * 43)
    assert len(fill_link(draft_reply("alice", "HIGH"), long_link, "alice")) <= MAX_CHARS
