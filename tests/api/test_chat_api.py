"""Customer chat endpoints: opening a conversation, the access key, history, bad inputs store nothing."""

from __future__ import annotations

import pytest

from tests.api.conftest import CUSTOMER, QUESTION, start_chat

URL = "/api/v1/chat/message"


def counts(client) -> tuple[int, int, int]:
    """(customers, conversations, messages) rows in the database."""
    from sqlalchemy import func, select

    from storage.models import Conversation, Customer, Message

    with client.services.db.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (Customer, Conversation, Message))


def test_first_message_opens_a_conversation_and_answers_with_sources(client) -> None:
    body = start_chat(client)
    assert len(body["conversation_id"]) == 32 and body["conversation_key"].startswith("ck1.")
    assert body["message"] == QUESTION and body["response"]
    assert body["needs_escalation"] is False
    assert body["sources"] and {"id", "title", "score"} <= body["sources"][0].keys()
    assert any("url" in link for link in body["suggested_links"])
    conversation = client.services.chat.conversations.get(body["conversation_id"])
    assert conversation.channel == "api"


def test_follow_up_needs_the_key_and_history_returns_every_turn(client) -> None:
    first = start_chat(client)
    cid, key = first["conversation_id"], first["conversation_key"]
    follow = client.post(
        URL, json={"message": "Et pour le forfait ?", "conversation_id": cid}, headers={"X-Conversation-Key": key}
    )
    assert follow.status_code == 200 and follow.json()["conversation_key"] is None
    history = client.get(f"/api/v1/chat/conversation/{cid}/messages", headers={"Authorization": f"Bearer {key}"})
    assert history.status_code == 200
    roles = [m["role"] for m in history.json()["messages"]]
    assert roles[:4] == ["user", "assistant", "user", "assistant"]


def test_conversation_id_alone_or_another_key_opens_nothing(client) -> None:
    mine, other = start_chat(client), start_chat(client, full_name="Bruno Martin", phone="0611223344")
    cid = mine["conversation_id"]
    before = counts(client)
    no_key = client.post(URL, json={"message": "bonjour", "conversation_id": cid})
    assert no_key.status_code == 401
    wrong = client.post(
        URL,
        json={"message": "bonjour", "conversation_id": cid},
        headers={"X-Conversation-Key": other["conversation_key"]},
    )
    assert wrong.status_code == 404 and "introuvable" in wrong.json()["detail"]
    read = client.get(
        f"/api/v1/chat/conversation/{cid}/messages", headers={"X-Conversation-Key": other["conversation_key"]}
    )
    assert read.status_code == 404
    forged = client.get(f"/api/v1/chat/conversation/{cid}/messages", headers={"X-Conversation-Key": "ck1.AAAA"})
    assert forged.status_code == 404
    assert counts(client) == before


def test_unknown_conversation_with_a_valid_looking_key_is_404(client) -> None:
    cid = "0" * 32
    key = client.app.state.api.keys.key_for(cid)
    response = client.post(
        URL, json={"message": "bonjour", "conversation_id": cid}, headers={"X-Conversation-Key": key}
    )
    assert response.status_code == 404


def test_escalation_opens_a_ticket(client) -> None:
    body = start_chat(client, message="Je veux parler à un conseiller humain, c'est urgent, je porte plainte !")
    assert body["needs_escalation"] is True and body["ticket_id"]
    assert client.services.tickets.get(body["ticket_id"]).conversation_id == body["conversation_id"]


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        ({"message": QUESTION}, 422, "coordonnées"),
        ({"message": QUESTION, "user_info": {**CUSTOMER, "phone": "12345"}}, 422, "chiffres"),
        ({"message": QUESTION, "user_info": {**CUSTOMER, "phone": "+44 7911 123456"}}, 422, "06 ou 07"),
        ({"message": QUESTION, "user_info": {**CUSTOMER, "full_name": "<script>alert(1)</script>"}}, 422, "nom"),
        (
            {"message": QUESTION, "user_info": {**CUSTOMER, "full_name": "Robert'); DROP TABLE customers;--"}},
            422,
            "nom",
        ),
        ({"message": QUESTION, "user_info": {**CUSTOMER, "email": "pas-un-email"}}, 422, "e-mail"),
        ({"message": "", "user_info": CUSTOMER}, 422, "Requête invalide"),
        ({"message": "   \x00\x01  ", "user_info": CUSTOMER}, 422, "vide"),
        ({"message": "x" * 1001, "user_info": CUSTOMER}, 422, "1000"),
        ({"message": QUESTION, "user_info": CUSTOMER, "context_token": "forged-token"}, 422, "plus valable"),
        ({"message": QUESTION, "user_info": CUSTOMER, "conversation_id": "1; DROP TABLE messages"}, 422, "format"),
        ({"message": QUESTION, "user_info": CUSTOMER, "admin": True}, 422, "champ inconnu"),
        ({"message": ["liste"], "user_info": CUSTOMER}, 422, "texte attendu"),
    ],
)
def test_bad_inputs_are_4xx_in_french_and_store_nothing(client, payload, status, fragment) -> None:
    before = counts(client)
    response = client.post(URL, json=payload)
    assert response.status_code == status, response.text
    assert fragment.lower() in response.json()["detail"].lower()
    assert counts(client) == before


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"\xff\xfe\x00binary\x00", {"Content-Type": "application/json"}),
        (b"{not json", {"Content-Type": "application/json"}),
        (b'"just a string"', {"Content-Type": "application/json"}),
        (b"message=hello", {"Content-Type": "application/x-www-form-urlencoded"}),
    ],
)
def test_binary_or_malformed_bodies_are_422(client, content, headers) -> None:
    before = counts(client)
    response = client.post(URL, content=content, headers=headers)
    assert response.status_code == 422
    assert counts(client) == before


def test_oversized_body_is_413_and_stores_nothing(client) -> None:
    before = counts(client)
    response = client.post(
        URL, content=b'{"message": "' + b"a" * 70_000 + b'"}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert counts(client) == before


def test_sql_and_html_in_a_message_are_plain_text(client) -> None:
    text = "<script>alert('x')</script> '; DROP TABLE messages; -- ma facture"
    body = start_chat(client, message=text)
    history = client.get(
        f"/api/v1/chat/conversation/{body['conversation_id']}/messages",
        headers={"X-Conversation-Key": body["conversation_key"]},
    ).json()
    assert history["messages"][0]["content"] == text  # stored verbatim as data, tables intact
    assert counts(client)[2] >= 2


def test_context_token_from_a_mastodon_link_attaches_the_post(client) -> None:
    token = client.services.social.tokens.issue({"source": "mastodon", "handle": "@bob", "complaint": "Plus de réseau"})
    response = client.post(
        URL, json={"message": "Toujours pas de réseau", "user_info": CUSTOMER, "context_token": token}
    )
    assert response.status_code == 200, response.text
    conversation = client.services.chat.conversations.get(response.json()["conversation_id"])
    assert conversation.channel == "mastodon" and conversation.context["handle"] == "@bob"


def test_context_token_joins_the_post_conversation_once_then_the_key_resumes_it(client) -> None:
    """Issue 16 through the API, and issue 12 finding 6: the link works once; the conversation key is the way back."""
    from datetime import UTC, datetime

    social = client.services.social
    post, _ = social.posts.insert_if_new({
        "status_id": "110", "account": "alice", "url": "https://mastodon.example/@alice/110",
        "content": "Plus de réseau depuis 3 jours à Lyon !!!", "created_at": datetime.now(UTC),
        "fetched_at": datetime.now(UTC), "is_complaint": True, "complaint_score": 0.9, "urgency": "HIGH",
        "reason": "test", "reply_status": "sent", "reply_status_id": "111",
    })  # fmt: skip
    social.open_ticket_for(post)
    post = social.posts.get(post.id)
    token = social.tokens.issue(social.context_of(post))

    joined = client.post(URL, json={"message": "Toujours rien ce matin", "user_info": CUSTOMER, "context_token": token})
    assert joined.status_code == 200, joined.text
    body = joined.json()
    assert body["conversation_id"] == post.conversation_id and body["ticket_id"] == post.ticket_id
    assert f"dossier n° {post.ticket_id}" in body["welcome"] and "sous 4 h" in body["welcome"]
    ticket = client.services.tickets.get(post.ticket_id)
    assert ticket.customer_id is not None and ticket.conversation_id == post.conversation_id

    again = client.post(URL, json={"message": "C'est moi aussi", "user_info": CUSTOMER, "context_token": token})
    assert again.status_code == 409 and "déjà été utilisé" in again.json()["detail"]

    key = {"X-Conversation-Key": body["conversation_key"]}
    follow = client.post(URL, json={"message": "Une précision", "conversation_id": body["conversation_id"]}, headers=key)
    assert follow.status_code == 200 and follow.json()["conversation_id"] == post.conversation_id
    history = client.get(f"/api/v1/chat/conversation/{post.conversation_id}/messages", headers=key).json()
    roles = [m["role"] for m in history["messages"]]
    assert roles[:3] == ["user", "system", "user"] and "@alice sur Mastodon" in history["messages"][0]["content"]
    assert history["messages"][2]["content"] == "Toujours rien ce matin"
    assert counts(client)[1] == 1  # one conversation for the post, whatever was tried
