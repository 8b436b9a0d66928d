"""Social tab callbacks: Mastodon text is shown as text, never as HTML or Markdown (issue 12, finding 8)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from settings import get_settings
from social.analysis import html_to_text
from social.service import SocialService
from tickets import TicketService
from tickets.users import StaffService
from ui.social_tab import SocialCallbacks

# What a hostile account can post: HTML entities become tags once decoded, Markdown becomes links.
POST_HTML = (
    "<p>&lt;img src=x onerror=alert(1)&gt; Panne réseau !! "
    "[Cliquez ici pour valider votre compte](https://evil.example/phish) "
    "![pixel](https://evil.example/track.png) **urgent** &lt;script&gt;alert(2)&lt;/script&gt;</p>"
)
HOSTILE_URL = "javascript:alert(3)//https://m.example/@x/1"


@pytest.fixture
def tab(db):
    settings = get_settings(database_url=str(db.url))
    tickets = TicketService(db)
    social = SocialService(settings.mastodon, db, tickets, public_url=settings.public_url)
    staff = StaffService(db)
    principal = staff.create_user("agent1", "correct horse battery", "agent")
    services = SimpleNamespace(settings=settings, staff=staff, social=social, social_monitor=None)
    return SocialCallbacks(services), social, principal


def _post(social: SocialService, url: str, account: str = "mallory@evil.example") -> int:
    post, _ = social.posts.insert_if_new(
        {
            "status_id": "1" if url.startswith("https") else "2",
            "account": account,
            "url": url,
            "content": html_to_text(POST_HTML),
            "is_complaint": True,
            "complaint_score": 0.9,
            "urgency": "HIGH",
            "reason": "panne ; Source : hashtag",
            "reply_status": "pending",
            "reply_text": "@mallory@evil.example Désolés pour ce souci.",
        }
    )
    return post.id


def test_a_hostile_post_is_shown_escaped_in_the_reply_queue(tab) -> None:
    callbacks, social, principal = tab
    post_id = _post(social, "https://m.example/@mallory/1")

    quote, draft, _ = callbacks.select(principal, post_id)

    assert "<img" not in quote and "<script" not in quote  # no tag reaches the Markdown component
    assert "&lt;img src\\=x onerror\\=alert\\(1\\)&gt;" in quote  # shown as typed
    assert "](https://evil" not in quote and "![" not in quote  # no link nor image syntax left
    assert "\\[Cliquez ici pour valider votre compte\\]\\(https\\://evil\\.example/phish\\)" in quote
    assert "\\*\\*urgent\\*\\*" in quote
    assert "([voir la publication](https://m.example/@mallory/1))" in quote  # our own link stays a link
    assert draft.startswith("@mallory@evil.example")


def test_a_post_url_that_is_not_http_is_never_made_a_link(tab) -> None:
    callbacks, social, principal = tab
    quote, _, _ = callbacks.select(principal, _post(social, HOSTILE_URL, account="x](javascript:alert(4))"))
    assert "javascript:" not in quote.replace("javascript\\:", "")
    assert "voir la publication" not in quote
    assert re.search(r"\]\(", quote) is None  # the account cannot open a link either
