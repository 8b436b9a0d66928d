"""The chat's public API through gradio_client, against the real app (`python app.py`).

How gradio_client 2.7 handles `gr.State`: a State input is not an API parameter (the client inserts
`None` for it, `Endpoint.insert_empty_state`) and a State output is dropped from the result
(`remove_skipped_components`, as are the Column visibility updates). The value lives on the server,
keyed by the client's `session_hash` (one random uuid per `Client`, renewed by `reset_session()`).
So consecutive calls of one Client share the conversation opened by /start_chat, while another
Client, or the same one after `reset_session()`, has none.
"""

from __future__ import annotations

import re

import pytest
from gradio_client import Client

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

FILL_FORM_FIRST = "⚠️ Merci de remplir d'abord le formulaire de contact."
QUESTION = "Comment télécharger ma facture ?"


@pytest.fixture
def client(live_app):
    client = Client(live_app.url, verbose=False)
    yield client
    client.close()


def text_of(message: dict) -> str:
    """Text of one chatbot message as the API returns it (content is a list of typed parts)."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def test_api_lists_start_chat_and_send_message(client: Client) -> None:
    api = client.view_api(print_info=False, return_format="dict")
    endpoints = api["named_endpoints"]
    assert {"/start_chat", "/send_message"} <= endpoints.keys()
    # State inputs are hidden from the API: only the visible fields are parameters.
    assert [p["parameter_name"] for p in endpoints["/start_chat"]["parameters"]] == ["name", "phone", "email"]
    assert [p["component"] for p in endpoints["/send_message"]["parameters"]] == ["Textbox", "Chatbot"]
    assert [r["component"] for r in endpoints["/send_message"]["returns"]] == ["Chatbot", "Textbox", "Markdown"]
    assert "/like" not in endpoints and not api["unnamed_endpoints"]


def test_start_then_send_in_one_client_session_answers_with_sources(client: Client, live_app) -> None:
    history, errors = client.predict("Amélie Blanc", "06 55 44 33 22", "amelie@example.fr", api_name="/start_chat")
    assert errors["visible"] is False
    assert [m["role"] for m in history] == ["assistant"]
    assert "Enchanté, Amélie" in text_of(history[0])
    stored = live_app.query("SELECT full_name, phone, email FROM customers WHERE phone = '+33655443322'")
    assert stored == [("Amélie Blanc", "+33655443322", "amelie@example.fr")]

    chat, message, status = client.predict(QUESTION, history, api_name="/send_message")

    assert (message, status) == ("", "")
    assert [m["role"] for m in chat] == ["assistant", "user", "assistant"]
    assert text_of(chat[1]) == QUESTION
    answer = text_of(chat[2])
    assert "facture" in answer
    sources = answer[answer.index('<details class="mc-sources">') :]
    assert re.search(r'<a href="https://mobile\.free\.fr/[^"]*"[^>]*>[^<]+</a>', sources), sources
    assert not re.search(r"\b[a-z]+-\d{3}\b", answer), answer  # no internal ids for the customer
    rows = live_app.query(
        "SELECT m.role, m.content FROM messages m JOIN conversations c ON c.id = m.conversation_id "
        "JOIN customers u ON u.id = c.customer_id WHERE u.phone = '+33655443322' ORDER BY m.id"
    )
    assert [role for role, _ in rows] == ["user", "assistant"]
    assert rows[0][1] == QUESTION
    assert answer.startswith(rows[1][1])

    # A second message in the same session continues the same conversation.
    chat, _, _ = client.predict("Merci !", chat, api_name="/send_message")
    assert len(chat) == 5
    assert live_app.count("conversations c JOIN customers u ON u.id = c.customer_id", "u.phone = '+33655443322'") == 1
    assert (
        live_app.count(
            "messages m JOIN conversations c ON c.id = m.conversation_id JOIN customers u ON u.id = c.customer_id",
            "u.phone = '+33655443322'",
        )
        == 4
    )


def test_invalid_phone_via_api_returns_french_error_and_stores_nothing(client: Client, live_app) -> None:
    customers, conversations = live_app.count("customers"), live_app.count("conversations")

    history, errors = client.predict("Marc Invalide", "0612", "", api_name="/start_chat")

    assert history == []
    assert errors["visible"] is True
    assert "Numéro incomplet : 10 chiffres sont attendus" in errors["value"]
    assert live_app.count("customers", "full_name = 'Marc Invalide'") == 0
    assert (live_app.count("customers"), live_app.count("conversations")) == (customers, conversations)
    # The failed form opened no session either.
    _, _, status = client.predict(QUESTION, [], api_name="/send_message")
    assert status == FILL_FORM_FIRST


def test_two_clients_never_share_a_conversation(live_app) -> None:
    first = Client(live_app.url, verbose=False)
    second = Client(live_app.url, verbose=False)
    try:
        assert first.session_hash != second.session_hash
        history, _ = first.predict("Chloé Girard", "07 44 55 66 77", "", api_name="/start_chat")
        first.predict(QUESTION, history, api_name="/send_message")
        messages = live_app.count("messages")

        chat, message, status = second.predict("Montrez-moi la conversation", [], api_name="/send_message")

        assert status == FILL_FORM_FIRST
        assert chat == []
        assert message == "Montrez-moi la conversation"  # kept in the box, nothing sent
        assert live_app.count("messages") == messages

        # The first client still has its own session (another question: the same text within 2 s is
        # taken for a double click and sent once); a reset session has none.
        chat, _, status = first.predict("Et pour consulter ma consommation ?", history, api_name="/send_message")
        assert status == "" and len(chat) == 3
        first.reset_session()
        _, _, status = first.predict(QUESTION, [], api_name="/send_message")
        assert status == FILL_FORM_FIRST
    finally:
        first.close()
        second.close()
