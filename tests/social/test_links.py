"""From a Mastodon reply's link into the chat (issue 16) and its single use (issue 12, finding 6).

Complaints are posted by "alice" on a real mastodon-mock server and answered by the real
SocialService (auto mode); the link is read from the public reply as the customer would.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from bench.mastodon_peer import SUPPORT, MastodonPeer
from rag.chat import OFFER_ACCEPTED_TEXT, ChatService
from rag.contact import validate_contact
from social.config import MastodonSettings
from social.links import LINK_INVALID, LINK_USED, ContactLinks, LinkUnavailable
from social.replies import TEMPLATES, pickup_delay
from social.service import SocialService
from social.tokens import hash_token
from storage import ConversationRepository, MessageRepository
from storage.models import ContactToken, Conversation, Ticket
from tickets import SLA_HOURS, Priority, TicketService

pytestmark = [pytest.mark.slow, pytest.mark.all_backends]

HIGH = "Ça fait 3 jours que je n'ai plus de réseau à Lyon, c'est inadmissible !!! #FreeMobile"
MEDIUM = "Facturé deux fois ce mois-ci, je demande un remboursement #FreeMobile"
LOW = "Toujours pas reçu ma carte SIM #FreeMobile"
ALICE = validate_contact("Alice Martin", "06 12 34 56 78", "alice@example.fr")
MALLORY = validate_contact("Mallory Intrus", "07 99 88 77 66")


class Clock:
    """A movable clock for the link expiry."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def social(db, peer, clock) -> SocialService:
    settings = MastodonSettings(
        instance_url=peer.base_url, access_token=f"{SUPPORT}_token", reply_mode="auto", request_timeout=5
    )
    return SocialService(settings, db, TicketService(db), public_url="http://chat.test", clock=clock)


@pytest.fixture
def chat(db, engine, social) -> ChatService:
    return ChatService(db, engine, social.tickets)


@pytest.fixture
def links(social, chat) -> ContactLinks:
    return ContactLinks(social, chat)


def complain(peer: MastodonPeer, social: SocialService, text: str):
    """Alice posts; the service answers publicly; return the stored post and the token of the reply's link."""
    status = peer.client("alice").status_post(text)
    post = social.handle_status(status, "test").post
    assert post.reply_status == "sent", post.reply_error
    url = next(word for word in post.reply_text.split() if word.startswith("http://chat.test/"))
    return post, parse_qs(urlparse(url).query)["token"][0]


def conversations(db) -> list[Conversation]:
    with db.session() as session:
        return list(session.query(Conversation))


def tickets(db) -> list[Ticket]:
    with db.session() as session:
        return list(session.query(Ticket))


def test_every_public_reply_promises_what_was_created(db, peer, social) -> None:
    """Each urgency's template against the state it describes: ticket or not, its delay, the link's validity."""
    assert set(TEMPLATES) == {"LOW", "MEDIUM", "HIGH"}
    for text, urgency in ((HIGH, "HIGH"), (MEDIUM, "MEDIUM"), (LOW, "LOW")):
        post, token = complain(peer, social, text)
        assert post.urgency == urgency
        reply = post.reply_text
        with db.session() as session:
            row = session.get(ContactToken, hash_token(token))
            validity = row.expires_at - row.created_at
        assert validity == timedelta(hours=social.settings.token_ttl_hours) and "valable 24 h" in reply
        stored = social.tickets.get(post.ticket_id) if post.ticket_id else None
        if stored is not None:  # a ticket exists: the reply says a file was opened, with its SLA delay
            priority = Priority(stored.priority)
            assert urgency == "HIGH" and priority is Priority.HIGH
            assert stored.sla_due_at - stored.created_at == timedelta(hours=SLA_HOURS[priority])
            assert "a ouvert un dossier" in reply and f"sous {SLA_HOURS[priority]} h" in reply
        else:  # no ticket: nothing claims one; a human takes over on request, within that ticket's delay
            assert urgency in ("MEDIUM", "LOW")
            assert "dossier" not in reply and "a ouvert" not in reply
            assert "si vous le demandez" in reply
            assert f"sous {pickup_delay(urgency)}" in reply
            assert pickup_delay(urgency) == f"{SLA_HOURS[Priority(urgency)]} h"
    assert [t.priority for t in tickets(db)] == ["HIGH"]


def test_high_post_link_joins_the_ticket_conversation_and_acknowledges_the_post(db, peer, social, chat, links) -> None:
    post, token = complain(peer, social, HIGH)
    assert links.view(token).status == "fresh"
    ticket = social.tickets.get(post.ticket_id)
    assert ticket.customer_id is None and post.conversation_id == ticket.conversation_id

    opening = links.join(token, ALICE)

    session = opening.session
    assert session.conversation_id == ticket.conversation_id  # THE conversation of the post
    assert len(conversations(db)) == 1 and len(tickets(db)) == 1
    conversation = ConversationRepository(db).get(session.conversation_id)
    assert conversation.customer_id == session.customer_id and conversation.channel == "mastodon"
    assert (conversation.contact_name, conversation.contact_phone) == ("Alice Martin", "+33612345678")
    ticket = social.tickets.get(ticket.id)
    assert ticket.customer_id == session.customer_id  # the agent sees who she is; she may rate it
    assert any("rejoint la conversation" in (e.body or "") for e in ticket.events)
    first, welcome = MessageRepository(db).list(session.conversation_id)
    assert first.role == "user" and "plus de réseau à Lyon" in first.content
    assert "@alice" in first.content and post.url in first.content
    assert welcome.role == "system" and welcome.content == opening.welcome
    assert "« Ça fait 3 jours que je n'ai plus de réseau à Lyon, c'est inadmissible !!! #FreeMobile »" in opening.welcome
    assert f"dossier n° {ticket.id}" in opening.welcome and "sous 4 h au plus tard" in opening.welcome
    assert "répondra ici même" in opening.welcome and opening.ticket.id == ticket.id
    assert chat.new_messages(session, 0) == []  # the welcome is on screen already, never pushed twice


def test_medium_post_link_opens_the_conversation_and_oui_opens_its_one_ticket(db, peer, social, chat, links) -> None:
    post, token = complain(peer, social, MEDIUM)
    assert post.ticket_id is None and post.conversation_id is None and conversations(db) == []

    opening = links.join(token, ALICE)

    session = opening.session
    assert social.posts.get(post.id).conversation_id == session.conversation_id
    first = MessageRepository(db).list(session.conversation_id)[0]
    assert first.role == "user" and "Facturé deux fois" in first.content and "@alice" in first.content
    assert opening.ticket is None and "Aucun dossier n'a été ouvert" in opening.welcome
    assert "Répondez « oui »" in opening.welcome and "sous 24 h au plus tard" in opening.welcome

    reply = chat.send(session, "Oui, merci")
    assert reply.answer.text == OFFER_ACCEPTED_TEXT and reply.ticket is not None
    assert (reply.ticket.priority, reply.ticket.customer_id) == ("MEDIUM", session.customer_id)
    assert reply.ticket.conversation_id == session.conversation_id
    assert "ticket n° " in reply.notice and "sous 24 h" in reply.notice
    assert social.posts.get(post.id).ticket_id == reply.ticket.id
    again = chat.send(session, "oui")  # a second "oui" opens nothing more
    assert again.answer.text != OFFER_ACCEPTED_TEXT
    assert len(tickets(db)) == 1 and len(conversations(db)) == 1


def test_the_link_works_once_then_only_in_the_browser_that_used_it(db, peer, social, links) -> None:
    _, token = complain(peer, social, HIGH)
    opening = links.join(token, ALICE)
    binding = links.bind(token, opening.session)
    assert binding and links.bind(token, opening.session) is None  # handed out once

    # Anyone else who read the public reply: no second join, a plain conversation without the post.
    with pytest.raises(LinkUnavailable) as refused:
        links.join(token, MALLORY)
    assert refused.value.used and str(refused.value) == LINK_USED
    other = links.open(token, MALLORY)
    assert other.notice == LINK_USED and other.welcome is None
    plain = ConversationRepository(db).get(other.session.conversation_id)
    assert plain.id != opening.session.conversation_id and plain.channel == "web" and plain.context is None
    assert [m.role for m in MessageRepository(db).list(plain.id)] == []
    joined = ConversationRepository(db).get(opening.session.conversation_id)
    assert joined.customer_id == opening.session.customer_id and joined.contact_name == "Alice Martin"
    assert links.bind(token, other.session) is None  # the other conversation cannot get the binding
    for wrong in (None, {}, {joined.id: "x" * 43}, {other.session.conversation_id: binding}):
        assert links.view(token, wrong).status == "used"

    # The browser of the first use comes back to the same conversation.
    again = links.view(token, {joined.id: binding})
    assert again.status == "resume" and again.session == opening.session


def test_the_link_is_checked_again_when_the_form_is_sent(db, peer, social, links, clock) -> None:
    _, token = complain(peer, social, HIGH)
    # Two pages loaded while the link was fresh; the first form sent wins, the second is refused.
    assert links.view(token).status == links.view(token).status == "fresh"
    first = links.open(token, ALICE)
    second = links.open(token, MALLORY)
    assert first.welcome and first.notice is None
    assert second.notice == LINK_USED and second.welcome is None

    # Expired between page load and submit.
    _, late = complain(peer, social, MEDIUM)
    assert links.view(late).status == "fresh"
    clock.now += timedelta(hours=24)
    assert links.view(late).status == "invalid"
    opened = links.open(late, ALICE)
    assert opened.notice == LINK_INVALID and opened.welcome is None
    with pytest.raises(LinkUnavailable) as refused:
        links.join(late, ALICE)
    assert not refused.value.used


def test_concurrent_first_uses_join_once(db, peer, social, links) -> None:
    _, token = complain(peer, social, LOW)
    results: list[object] = []
    barrier = threading.Barrier(4)

    def use(contact) -> None:
        barrier.wait()
        try:
            results.append(links.join(token, contact))
        except LinkUnavailable as exc:
            results.append(exc)

    threads = [threading.Thread(target=use, args=(c,)) for c in (ALICE, MALLORY, ALICE, MALLORY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    joined = [r for r in results if not isinstance(r, LinkUnavailable)]
    assert len(results) == 4 and len(joined) == 1
    assert len(conversations(db)) == 1 and tickets(db) == []
