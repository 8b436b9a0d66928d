"""Agent console end to end: an escalated customer, an agent who takes, answers and resolves, a CSAT of 5."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import BOT, pick, send_message, submit_contact, wait_db

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

PUSH_TIMEOUT_MS = 20_000  # the customer's chat polls every 3 s
AGENT = "agent.e2e"
PASSWORD = "un-mot-de-passe-solide-42"
CUSTOMER = "Camille Conseil"
PHONE, PHONE_E164 = "07 11 22 33 44", "+33711223344"
REPLY = "Bonjour Camille, je vérifie votre facture et je reviens vers vous."


def open_customer_chat(page: Page) -> None:
    submit_contact(page, CUSTOMER, PHONE)
    expect(page.locator("#chat-area")).to_be_visible()


def login(page: Page, password: str) -> None:
    page.get_by_role("tab", name="🔐 Espace conseillers").click()
    page.locator("#staff-username input").fill(AGENT)
    page.locator("#staff-password input").fill(password)
    page.locator("#staff-login-btn").click()


def test_agent_takes_answers_and_resolves_and_customer_rates(
    browser, live_app, create_staff, page: Page, tmp_path
) -> None:
    shots = Path(os.environ.get("MOBILIA_E2E_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    create_staff(AGENT, "agent", PASSWORD)

    # The customer escalates.
    open_customer_chat(page)
    send_message(page, "Je veux parler à un conseiller, ma facture est fausse")
    notice = page.locator(BOT, has_text="ticket n°").last
    expect(notice).to_be_visible()
    ticket_id = int(re.search(r"ticket n° (\d+)", notice.inner_text()).group(1))
    conversation = live_app.query("SELECT conversation_id FROM tickets WHERE id = ?", (ticket_id,))[0][0]

    # The agent, in a second browser context.
    context = browser.new_context(locale="fr-FR", viewport={"width": 1400, "height": 1300})
    context.set_default_timeout(30_000)
    agent = context.new_page()
    try:
        agent.goto(live_app.url)
        login(agent, "mauvais-mot-de-passe")
        expect(agent.locator("#staff-message")).to_contain_text("Identifiant ou mot de passe incorrect")
        expect(agent.get_by_role("tab", name="🎫 Tickets")).to_have_count(0)

        login(agent, PASSWORD)
        expect(agent.locator("#staff-who")).to_contain_text(AGENT)
        agent.get_by_role("tab", name="🎫 Tickets").click()
        row = agent.locator("#tq-table").get_by_role("row").filter(has_text=CUSTOMER).first
        expect(row).to_be_visible()
        expect(row).to_contain_text("Ouvert")
        row.get_by_role("gridcell").first.click()
        expect(agent.locator("#td-header")).to_contain_text(f"Ticket n° {ticket_id}")
        expect(agent.locator("#td-customer")).to_contain_text(PHONE_E164)
        expect(agent.locator("#td-chat")).to_contain_text("ma facture est fausse")

        agent.locator("#td-take").click()
        expect(agent.locator("#tickets-message")).to_contain_text("pris en charge")
        expect(agent.locator("#td-header")).to_contain_text("En cours")
        pick(agent, "#td-canned", "Accusé de réception")
        expect(agent.locator("#td-reply textarea")).to_have_value(re.compile(r"^Bonjour Camille, "))
        agent.locator("#td-reply textarea").fill(REPLY)
        agent.locator("#td-send").click()
        expect(agent.locator("#tickets-message")).to_contain_text("Réponse envoyée")
        expect(agent.locator("#td-reply textarea")).to_have_value("")
        agent.screenshot(path=str(shots / "agent_console.png"), full_page=True)

        # The reply reaches the customer's chat; the bot no longer answers.
        pushed = page.locator(BOT, has_text=REPLY)
        expect(pushed).to_be_visible(timeout=PUSH_TIMEOUT_MS)
        expect(pushed).to_contain_text("Conseiller")
        last_id = live_app.query("SELECT MAX(id) FROM messages WHERE conversation_id = ?", (conversation,))[0][0]
        send_message(page, "Merci, j'attends votre retour.")
        wait_db(
            lambda: (
                live_app.count("messages", "conversation_id = ? AND id > ? AND role = 'user'", (conversation, last_id))
                == 1
            ),
            message="customer message stored",
        )
        assert (
            live_app.count("messages", "conversation_id = ? AND id > ? AND role = 'assistant'", (conversation, last_id))
            == 0
        )

        # The agent resolves; the customer rates 5.
        pick(agent, "#td-status", "Résolu")
        agent.locator("#td-apply").click()
        expect(agent.locator("#tickets-message")).to_contain_text("Statut : Résolu")
        expect(page.locator("#rating-box")).to_be_visible(timeout=PUSH_TIMEOUT_MS)
        page.locator("#rating-score label", has_text="5").click()
        page.locator("#rating-send").click()
        expect(page.locator("#chat-status")).to_contain_text("Merci pour votre note (5/5)")
        expect(page.locator("#rating-box")).to_be_hidden()
        page.screenshot(path=str(shots / "customer_rating.png"), full_page=True)
    finally:
        context.close()

    wait_db(
        lambda: live_app.query("SELECT csat FROM tickets WHERE id = ?", (ticket_id,)) == [(5,)], message="csat stored"
    )
    assert live_app.query("SELECT status, assignee FROM tickets WHERE id = ?", (ticket_id,)) == [("RESOLVED", AGENT)]
    kinds = [
        k for (k,) in live_app.query("SELECT kind FROM ticket_events WHERE ticket_id = ? ORDER BY id", (ticket_id,))
    ]
    assert "reply" in kinds and kinds.count("status") == 2
