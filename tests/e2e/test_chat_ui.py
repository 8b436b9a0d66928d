"""Customer chat driven in Chromium against the real app (`python app.py`), checked in its SQLite DB."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import BOT, send_message, submit_contact, wait_db

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

USER = "#chatbot [data-testid='user']"
MAIN_PHONE = "06 12 34 56 78"
MAIN_PHONE_E164 = "+33612345678"
DISLIKE = "button[aria-label=\"Je n'aime pas\"], button[aria-label='Dislike']"
ENTRY_ID = re.compile(r"`?\b[a-z]+-\d{3}\b`?")


def open_chat(page: Page, name: str = "Jeanne Dupont", phone: str = MAIN_PHONE) -> None:
    """Submit a valid contact form and wait for the chat with its welcome message."""
    submit_contact(page, name, phone)
    expect(page.locator("#chat-area")).to_be_visible()
    expect(page.locator("#contact-form")).to_be_hidden()
    expect(page.locator(BOT).first).to_contain_text(f"Enchanté, {name.split()[0]}")


def send(page: Page, text: str) -> Locator:
    """Send `text` and wait for the final answer and the emptied input box; return the new bot message."""
    answer = send_message(page, text)
    expect(page.locator("#chat-input textarea")).to_have_value("")
    return answer


def latest_conversation(live_app, phone_e164: str) -> str:
    rows = live_app.query(
        "SELECT c.id FROM conversations c JOIN customers u ON u.id = c.customer_id "
        "WHERE u.phone = ? ORDER BY c.created_at DESC, c.rowid DESC LIMIT 1",
        (phone_e164,),
    )
    assert rows, f"no conversation stored for {phone_e164}"
    return rows[0][0]


def dislike_button(message: Locator) -> Locator:
    """The 👎 button shown under one bot message (its label follows the browser locale)."""
    buttons = message.locator(
        "xpath=ancestor::div[contains(@class, 'message-row')]/following-sibling::div[contains(@class, 'message-buttons')][1]"
    )
    return buttons.locator(DISLIKE)


def test_invalid_phone_is_refused_in_french_and_nothing_is_stored(page: Page, live_app) -> None:
    customers, conversations = live_app.count("customers"), live_app.count("conversations")

    submit_contact(page, "Paul Refusé", "0612")

    errors = page.locator("#contact-errors")
    expect(errors).to_be_visible()
    expect(errors).to_contain_text("Numéro incomplet : 10 chiffres sont attendus")
    expect(page.locator("#contact-form")).to_be_visible()
    expect(page.locator("#chat-area")).to_be_hidden()
    assert live_app.count("customers", "full_name = ?", ("Paul Refusé",)) == 0
    assert live_app.count("customers") == customers
    assert live_app.count("conversations") == conversations
    if customers == 0:  # first test of the session (the normal order): the database is still empty
        assert live_app.query("SELECT COUNT(*) FROM customers") == [(0,)]


def test_valid_form_opens_chat_and_answer_cites_sources(page: Page, live_app) -> None:
    open_chat(page)
    stored = live_app.query("SELECT full_name, phone FROM customers WHERE phone = ?", (MAIN_PHONE_E164,))
    assert stored == [("Jeanne Dupont", MAIN_PHONE_E164)]

    answer = send(page, "Comment télécharger ma facture ?")

    expect(page.locator(USER).last).to_have_text("Comment télécharger ma facture ?")
    expect(answer).to_contain_text("facture")
    sources = answer.locator("details.mc-sources")
    expect(sources).to_have_count(1)
    expect(sources.locator("summary")).to_contain_text("Sources (1)")
    sources.locator("summary").click()
    first = sources.locator("li a").first
    expect(first).to_be_visible()
    conversation = latest_conversation(live_app, MAIN_PHONE_E164)
    roles = live_app.query("SELECT role FROM messages WHERE conversation_id = ? ORDER BY id", (conversation,))
    assert roles == [("user",), ("assistant",)]
    top_entry, label = live_app.query(
        "SELECT json_extract(meta, '$.top_entry'), json_extract(meta, '$.sources[0].label') FROM messages "
        "WHERE conversation_id = ? AND role = 'assistant'",
        (conversation,),
    )[0]
    # The customer reads the source's title and can open its page; internal ids and scores stay in staff views.
    expect(first).to_have_text(label)
    assert first.get_attribute("href").startswith("https://mobile.free.fr/")
    assert top_entry not in answer.inner_text() and not ENTRY_ID.search(answer.inner_text())


def test_on_a_phone_the_answer_fills_the_bubble_not_its_sources(browser, live_app) -> None:
    context = browser.new_context(locale="fr-FR", viewport={"width": 390, "height": 844}, is_mobile=True)
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        page.goto(live_app.url)
        open_chat(page, "Hugo Petit", "06 11 22 33 44")
        answer = send(page, "Quels sont les paramètres APN de Free Mobile ?")
        sources = answer.locator("details.mc-sources")
        expect(sources).to_have_count(1)
        assert sources.get_attribute("open") is None  # folded until the customer opens it
        expect(sources.locator("li").first).to_be_hidden()
        bubble, folded = answer.bounding_box(), sources.bounding_box()
        assert bubble["width"] <= 390
        assert folded["height"] <= 0.25 * bubble["height"], (folded, bubble)
    finally:
        context.close()


def test_script_is_shown_as_text_and_escalation_opens_one_ticket(page: Page, live_app, dialogs, tmp_path) -> None:
    text = "<script>alert(1)</script> Je veux parler à un conseiller"
    open_chat(page)
    conversation = latest_conversation(live_app, MAIN_PHONE_E164)

    send(page, text)

    expect(page.locator(USER).last).to_have_text(text)
    assert page.locator("#chatbot script").count() == 0
    notice = page.locator(BOT, has_text="ticket n°").last
    expect(notice).to_be_visible()
    ticket_no = int(re.search(r"ticket n° (\d+)", notice.inner_text()).group(1))
    expect(page.locator("#chat-status")).to_contain_text(f"Ticket n° {ticket_no} ouvert")
    tickets = live_app.query(
        "SELECT t.id, u.phone FROM tickets t JOIN customers u ON u.id = t.customer_id WHERE t.conversation_id = ?",
        (conversation,),
    )
    assert tickets == [(ticket_no, MAIN_PHONE_E164)]
    stored = live_app.query("SELECT content FROM messages WHERE conversation_id = ? AND role = 'user'", (conversation,))
    assert stored == [(text,)]
    assert dialogs == []
    page.screenshot(path=str(tmp_path / "escalation.png"), full_page=True)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "Votre message est vide : écrivez votre question avant d'envoyer."),
        ("x" * 1001, "Votre message est trop long (1001 caractères, maximum 1000)."),
    ],
    ids=["empty", "1001-chars"],
)
def test_invalid_message_shows_french_error_and_stores_nothing(page: Page, live_app, text: str, error: str) -> None:
    open_chat(page)
    conversation = latest_conversation(live_app, MAIN_PHONE_E164)
    bots, users = page.locator(BOT).count(), page.locator(USER).count()

    page.locator("#chat-input textarea").fill(text)
    page.locator("#chat-send").click()

    expect(page.locator("#chat-status")).to_contain_text(error)
    expect(page.locator(BOT)).to_have_count(bots)
    expect(page.locator(USER)).to_have_count(users)
    assert live_app.count("messages", "conversation_id = ?", (conversation,)) == 0
    # The refused text stays in the box so the customer can fix it.
    expect(page.locator("#chat-input textarea")).to_have_value(text)


def test_dislike_stores_feedback_and_reveals_comment_box(page: Page, live_app) -> None:
    open_chat(page)
    conversation = latest_conversation(live_app, MAIN_PHONE_E164)
    answer = send(page, "Comment télécharger ma facture ?")
    message_id = live_app.query(
        "SELECT id FROM messages WHERE conversation_id = ? AND role = 'assistant'", (conversation,)
    )[0][0]
    expect(page.locator("#feedback-box")).to_be_hidden()

    dislike_button(answer).click()

    expect(page.locator("#feedback-box")).to_be_visible()
    expect(page.locator("#chat-status")).to_contain_text("Dites-nous ce qui n'allait pas")
    wait_db(lambda: live_app.count("feedback", "message_id = ?", (message_id,)) == 1, message="the 👎 row")
    assert live_app.query(
        "SELECT message_id, conversation_id, rating, comment FROM feedback WHERE message_id = ?", (message_id,)
    ) == [(message_id, conversation, -1, None)]

    page.locator("#feedback-comment textarea").fill("La réponse ne parle pas de mon cas.")
    page.locator("#feedback-send").click()

    expect(page.locator("#feedback-box")).to_be_hidden()
    expect(page.locator("#chat-status")).to_contain_text("votre commentaire a été transmis")
    wait_db(
        lambda: (
            live_app.query("SELECT comment FROM feedback WHERE message_id = ?", (message_id,))
            == [("La réponse ne parle pas de mon cas.",)]
        ),
        message="the feedback comment",
    )
    assert live_app.count("feedback", "message_id = ?", (message_id,)) == 1


def test_new_conversation_shows_the_form_again(page: Page, live_app, tmp_path) -> None:
    open_chat(page, name="Luc Martin", phone="07 98 76 54 32")
    send(page, "Comment télécharger ma facture ?")
    page.screenshot(path=str(tmp_path / "final_chat.png"), full_page=True)
    assert (tmp_path / "final_chat.png").stat().st_size > 0

    page.locator("#chat-new").click()

    expect(page.locator("#contact-form")).to_be_visible()
    expect(page.locator("#chat-area")).to_be_hidden()
    expect(page.locator("#contact-submit")).to_be_visible()
    # A new form submission starts a second, separate conversation for the same customer.
    open_chat(page, name="Luc Martin", phone="07 98 76 54 32")
    expect(page.locator(USER)).to_have_count(0)
    assert live_app.count("conversations c JOIN customers u ON u.id = c.customer_id", "u.phone = '+33798765432'") == 2


def test_new_conversation_drops_a_pending_dislike_comment(page: Page, live_app) -> None:
    """A 👎 comment box left open must not follow the customer into the next conversation."""
    open_chat(page, name="Inès Petit", phone="07 11 22 33 44")
    answer = send(page, "Comment télécharger ma facture ?")
    dislike_button(answer).click()
    expect(page.locator("#feedback-box")).to_be_visible()

    page.locator("#chat-new").click()
    expect(page.locator("#contact-form")).to_be_visible()
    open_chat(page, name="Inès Petit", phone="07 11 22 33 44")

    expect(page.locator("#feedback-box")).to_be_hidden()
    expect(page.locator("#chat-status")).not_to_contain_text("Dites-nous")
