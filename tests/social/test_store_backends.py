"""The post repository on SQLite and PostgreSQL: a post is inserted once and the caller knows it was new."""

from __future__ import annotations

import pytest

from social.store import SocialPostRepository
from storage.models import utcnow


@pytest.mark.all_backends
def test_insert_if_new_tells_a_new_post_from_a_known_one(db) -> None:
    """Replies and tickets hang on `inserted`: on PostgreSQL it once read a rowcount of -1 (never new)."""
    posts = SocialPostRepository(db)
    values = {"status_id": "42", "account": "alice", "url": "https://m.test/42", "content": "Plus de réseau !",
              "created_at": utcnow(), "fetched_at": utcnow(), "is_complaint": True, "complaint_score": 0.9,
              "urgency": "HIGH", "reason": "test", "reply_status": "queued", "reply_text": "Bonjour"}  # fmt: skip
    first, inserted = posts.insert_if_new(values)
    again, inserted_again = posts.insert_if_new({**values, "content": "autre"})
    assert (inserted, inserted_again) == (True, False)
    assert again.id == first.id and again.content == "Plus de réseau !"
