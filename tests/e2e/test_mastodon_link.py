"""From a Mastodon post to the private chat, in Chromium, against mastodon-mock and `python app.py`.

Issue 16: Alice's post gets a public reply with her personal link; she joins the conversation
opened for her post (post, dossier number and delay acknowledged), an agent answers its ticket,
resolves it, and she rates 5. Issue 12, finding 6: the link works once; a second browser gets a
plain conversation, the first browser resumes its own, and the form re-checks the link.
Screenshots of Alice's chat go to MOBILIA_E2E_SCREENSHOTS (a temp folder by default).
"""

from __future__ import annotations

import html
import os
import re
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect

from bench.mastodon_peer import SUPPORT, MastodonPeer
from social.tokens import hash_token
from tests.conftest import free_port
from tests.e2e.conftest import (
    BOT,
    LiveApp,
    create_staff_account,
    pick,
    send_message,
    staff_login,
    start_app,
    submit_contact,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

REPLY_TIMEOUT_S = 30  # the monitor answers within about a second; generous hang guard
PUSH_TIMEOUT_MS = 20_000  # the customer's chat polls every 3 s
AGENT, PASSWORD = "agent.mastodon", "un-mot-de-passe-solide-42"
POST = "@mobiliasav Ça fait 3 jours que je n'ai plus de réseau à Lyon, c'est inadmissible !!! #FreeMobile"
REPLY = "Bonjour Alice, une antenne est en maintenance à Lyon : le réseau revient ce soir. Désolé pour la gêne."


@pytest.fixture(scope="module")
def social_app(tmp_path_factory, shipped_config):
    """mastodon-mock, then the app monitoring it in auto mode (both on loopback), shared by this module."""
    peer = MastodonPeer(tmp_path_factory.mktemp("mastodon") / "mastodon.db", port=free_port()).start()
    env = {
        "MOBILIA_MASTODON__INSTANCE_URL": peer.base_url,
        "MOBILIA_MASTODON__ACCESS_TOKEN": f"{SUPPORT}_token",
        "MOBILIA_MASTODON__REPLY_MODE": "auto",
    }
    try:
        with start_app(tmp_path_factory.mktemp("social_app"), shipped_config, env, port=free_port()) as app:
            yield app, peer
    finally:
        peer.stop()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("MOBILIA_E2E_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def post_and_get_link(peer: MastodonPeer, author: str, text: str) -> tuple[dict, str, str]:
    """Post as ``author``; wait for the support account's public reply; return (status, reply text, link)."""
    status = peer.client(author).status_post(text)

    def our_reply() -> dict | None:
        replies = peer.client(author).status_context(status["id"])["descendants"]
        return next((s for s in replies if s["account"]["acct"] == SUPPORT), None)

    reply = wait_for(our_reply, REPLY_TIMEOUT_S, "the public reply")
    content = html.unescape(re.sub(r"<[^>]+>", " ", reply["content"]))
    link = re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+", content).group(0)
    return status, content, link


def token_of(link: str) -> str:
    return parse_qs(urlparse(link).query)["token"][0]


def new_page(browser, url: str) -> Page:
    context = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 1300})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(url)
    return page


def fill_form(page: Page, name: str, phone: str) -> None:
    submit_contact(page, name, phone)
    expect(page.locator("#chat-area")).to_be_visible()


def post_conversation(app: LiveApp, status_id) -> str | None:
    rows = app.query("SELECT conversation_id FROM mastodon_posts WHERE status_id = ?", (str(status_id),))
    return rows[0][0] if rows else None


def newest_conversation(app: LiveApp) -> tuple[str, str, str]:
    """(id, channel, context as JSON text: "null" for none) of the latest conversation."""
    sql = "SELECT id, channel, COALESCE(context, 'null') FROM conversations ORDER BY created_at DESC LIMIT 1"
    return app.query(sql)[0]


def test_alice_joins_her_post_conversation_an_agent_answers_and_she_rates(browser, social_app, shots) -> None:
    app, peer = social_app
    status, public, link = post_and_get_link(peer, "alice", POST)
    assert "a ouvert un dossier prioritaire" in public and "sous 4 h" in public
    ticket_id, priority = app.query(
        "SELECT t.id, t.priority FROM tickets t JOIN mastodon_posts p ON p.ticket_id = t.id WHERE p.status_id = ?",
        (str(status["id"]),),
    )[0]
    assert priority == "HIGH"

    alice = new_page(browser, link)
    try:
        expect(alice.locator("#contact-social-note")).to_contain_text("plus de réseau à Lyon")
        fill_form(alice, "Alice Martin", "06 12 34 56 78")
        welcome = alice.locator(BOT).first
        expect(welcome).to_contain_text("Bonjour Alice")
        expect(welcome).to_contain_text("« @mobiliasav Ça fait 3 jours que je n'ai plus de réseau à Lyon")
        expect(welcome).to_contain_text(f"dossier n° {ticket_id}")
        expect(welcome).to_contain_text("sous 4 h au plus tard")
        alice.screenshot(path=str(shots / "1_alice_welcome.png"), full_page=True)
        conversation = post_conversation(app, status["id"])
        assert app.query("SELECT conversation_id, customer_id IS NOT NULL FROM tickets WHERE id = ?", (ticket_id,)) == [
            (conversation, 1)
        ]

        create_staff_account(app.db_url, AGENT, "agent", PASSWORD)
        agent = new_page(browser, app.url)
        try:
            staff_login(agent, AGENT, PASSWORD)
            agent.get_by_role("tab", name="🎫 Tickets").click()
            row = agent.locator("#tq-table").get_by_role("row").filter(has_text="Alice Martin").first
            expect(row).to_be_visible()
            row.get_by_role("gridcell").first.click()
            expect(agent.locator("#td-header")).to_contain_text(f"Ticket n° {ticket_id}")
            expect(agent.locator("#td-customer")).to_contain_text("Alice Martin")
            expect(agent.locator("#td-chat")).to_contain_text("plus de réseau à Lyon")
            agent.locator("#td-reply textarea").fill(REPLY)
            agent.locator("#td-send").click()
            expect(agent.locator("#tickets-message")).to_contain_text("Réponse envoyée")

            expect(alice.locator(BOT, has_text=REPLY)).to_be_visible(timeout=PUSH_TIMEOUT_MS)
            alice.screenshot(path=str(shots / "2_alice_agent_reply.png"), full_page=True)

            pick(agent, "#td-status", "Résolu")
            agent.locator("#td-apply").click()
            expect(agent.locator("#tickets-message")).to_contain_text("Statut : Résolu")
        finally:
            agent.context.close()

        expect(alice.locator("#rating-box")).to_be_visible(timeout=PUSH_TIMEOUT_MS)
        alice.screenshot(path=str(shots / "3_alice_rating_asked.png"), full_page=True)
        alice.locator("#rating-score label", has_text="5").click()
        alice.locator("#rating-send").click()
        expect(alice.locator("#chat-status")).to_contain_text("Merci pour votre note (5/5)")
        alice.screenshot(path=str(shots / "4_alice_rated.png"), full_page=True)
        expect(alice.locator(BOT).first).to_contain_text("Bonjour Alice")  # one chat, never repainted
        expect(alice.locator("#chatbot")).not_to_contain_text("Vous reprenez")
    finally:
        alice.context.close()

    wait_for(lambda: app.query("SELECT csat FROM tickets WHERE id = ?", (ticket_id,)) == [(5,)], 15, "csat 5")
    messages = app.query("SELECT role, content FROM messages WHERE conversation_id = ? ORDER BY id", (conversation,))
    assert messages[0][0] == "user" and "plus de réseau à Lyon" in messages[0][1] and "@alice" in messages[0][1]
    assert ("agent", REPLY) in messages
    assert ("system", "⭐ Note de satisfaction du client : 5/5.") in messages
    assert app.count("conversations", "channel = 'mastodon'") == 1 and app.count("tickets") == 1


def test_link_works_once_a_second_browser_gets_a_plain_chat_and_the_first_resumes(browser, social_app, shots) -> None:
    app, peer = social_app
    status, public, link = post_and_get_link(peer, "bob", "Facturé deux fois ce mois-ci, je demande un remboursement #FreeMobile")
    assert "dossier" not in public and "si vous le demandez" in public and "sous 24 h" in public

    first = new_page(browser, link)
    try:
        fill_form(first, "Bob Durand", "07 11 22 33 44")
        expect(first.locator(BOT).first).to_contain_text("Aucun dossier n'a été ouvert")
        expect(first.locator(BOT).first).to_contain_text("Répondez « oui »")
        conversation = post_conversation(app, status["id"])
        bob = app.query("SELECT customer_id FROM conversations WHERE id = ?", (conversation,))[0][0]

        # Someone else who read the public reply, in another browser.
        other = new_page(browser, link)
        try:
            expect(other.locator("#contact-social-note")).to_contain_text("Ce lien a déjà été utilisé")
            expect(other.locator("#contact-social-note")).not_to_contain_text("Facturé deux fois")
            other.screenshot(path=str(shots / "5_second_browser_link_used.png"), full_page=True)
            fill_form(other, "Mallory Intrus", "06 99 88 77 66")
            expect(other.locator(BOT).first).to_contain_text("Enchanté, Mallory")
            expect(other.locator("#chatbot")).not_to_contain_text("Facturé deux fois")
            other.screenshot(path=str(shots / "6_second_browser_plain_chat.png"), full_page=True)
        finally:
            other.context.close()
        plain_id, channel, context = newest_conversation(app)
        assert plain_id != conversation and channel == "web" and context == "null"
        assert app.query("SELECT customer_id FROM conversations WHERE id = ?", (conversation,)) == [(bob,)]

        # The first browser opens the link again: it is back in its conversation, and "oui" opens the ticket.
        first.goto(link)
        expect(first.locator("#chat-area")).to_be_visible()
        expect(first.locator("#contact-form")).to_be_hidden()
        expect(first.locator("#chatbot")).to_contain_text("Vous reprenez votre conversation")
        expect(first.locator("#chatbot")).to_contain_text("Aucun dossier n'a été ouvert")
        send_message(first, "oui")
        expect(first.locator(BOT).last).to_contain_text("ticket n°")
        first.screenshot(path=str(shots / "7_first_browser_resumed_oui.png"), full_page=True)
    finally:
        first.context.close()
    assert app.query("SELECT priority, customer_id FROM tickets WHERE conversation_id = ?", (conversation,)) == [
        ("MEDIUM", bob)
    ]
    assert app.query("SELECT ticket_id IS NOT NULL FROM mastodon_posts WHERE status_id = ?", (str(status["id"]),)) == [
        (1,)
    ]


def test_the_form_checks_the_link_again_when_sent(browser, social_app) -> None:
    app, peer = social_app
    _, _, link = post_and_get_link(peer, "alice", "Toujours pas reçu ma carte SIM #FreeMobile")
    late, early = new_page(browser, link), new_page(browser, link)  # both pages loaded while the link is fresh
    try:
        for page in (late, early):
            expect(page.locator("#contact-social-note")).to_contain_text("carte SIM")
        fill_form(early, "Alice Martin", "06 12 34 56 78")
        expect(early.locator(BOT).first).to_contain_text("carte SIM")
        fill_form(late, "Mallory Intrus", "06 99 88 77 66")
        expect(late.locator(BOT).first).to_contain_text("Ce lien a déjà été utilisé")
        expect(late.locator("#chatbot")).not_to_contain_text("carte SIM")
        assert newest_conversation(app)[1:] == ("web", "null")
    finally:
        late.context.close()
        early.context.close()

    _, _, expiring = post_and_get_link(peer, "bob", "Je vais quitter Free, je veux résilier #FreeMobile")
    page = new_page(browser, expiring)
    try:
        expect(page.locator("#contact-social-note")).to_contain_text("résilier")
        past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
        with sqlite3.connect(app.db_path, timeout=10) as db:  # the link expires while the form is open
            db.execute("UPDATE contact_tokens SET expires_at = ? WHERE token_hash = ?", (past, hash_token(token_of(expiring))))
        fill_form(page, "Bob Durand", "07 11 22 33 44")
        expect(page.locator(BOT).first).to_contain_text("n'est plus valable")
        expect(page.locator("#chatbot")).not_to_contain_text("résilier")
        assert newest_conversation(app)[1:] == ("web", "null")
    finally:
        page.context.close()
