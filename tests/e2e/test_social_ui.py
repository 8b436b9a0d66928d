"""Social tab in Chromium: a hostile Mastodon post is shown as text to the agent (issue 12, finding 8)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import staff_login

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

AGENT = "social.e2e"
PASSWORD = "un-mot-de-passe-solide-43"
OUR_LINK = "https://m.example/@mallory/4242"
HOSTILE = (
    "<img src=x onerror=alert(1)> Panne réseau !! [Cliquez ici pour valider votre compte](https://evil.example/phish) "
    "![pixel](https://evil.example/track.png)"
)


def _store_post(db_url: str) -> int:
    """A pending complaint as the monitor would store it (its HTML already decoded into this text)."""
    from social.store import SocialPostRepository
    from storage import Database

    db = Database(db_url)
    try:
        post, _ = SocialPostRepository(db).insert_if_new(
            {
                "status_id": "e2e-4242",
                "account": "mallory@evil.example",
                "url": OUR_LINK,
                "content": HOSTILE,
                "is_complaint": True,
                "complaint_score": 0.9,
                "urgency": "HIGH",
                "reason": "panne",
                "reply_status": "pending",
                "reply_text": "@mallory@evil.example Désolés pour ce souci.",
            }
        )
        return post.id
    finally:
        db.dispose()


def test_hostile_post_is_text_in_the_social_tab(page: Page, live_app, create_staff, dialogs) -> None:
    create_staff(AGENT, "agent", PASSWORD)
    post_id = _store_post(live_app.db_url)
    staff_login(page, AGENT, PASSWORD)
    page.get_by_role("tab", name="📣 Réseaux sociaux").click()
    page.locator("#social-refresh").click()
    page.locator("#social-queue input").click()
    page.get_by_role("option").filter(has_text=f"n° {post_id} ").click()

    shown = page.locator("#social-post")
    expect(shown).to_contain_text("<img src=x onerror=alert(1)>")
    expect(shown).to_contain_text("[Cliquez ici pour valider votre compte](https://evil.example/phish)")
    expect(shown.locator(f"a[href='{OUR_LINK}']")).to_have_count(1)  # our own link to the post stays
    expect(shown.locator("img")).to_have_count(0)
    expect(shown.locator("a[href*='evil.example']")).to_have_count(0)
    expect(page.locator("#social-posts img")).to_have_count(0)
    assert dialogs == []
