"""Following a Mastodon reply's personal link into the chat: single use, one conversation per post.

The public reply can be read by anyone, so the link works once. Its first use (``join``) claims
it, joins the customer to the post's conversation (the one holding its HIGH-urgency ticket, or
one opened then, the post as first message), attaches the contact form to that conversation
and its ticket, and acknowledges the post. Afterwards only the browser of the first use, which
received a binding secret (``bind``), comes back to that conversation through the link
(``view`` / ``open``); anyone else gets a French notice and a plain conversation without the
post. API clients come back with the conversation key they were given instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rag.chat import TICKET_OFFER_KEY, ChatSession
from rag.contact import Contact
from social.replies import pickup_delay, ticket_priority
from social.tokens import ContactLink
from storage.models import Ticket
from tickets import PRIORITY_LABELS, SLA_HOURS, Priority

log = logging.getLogger(__name__)

LINK_USED = (
    "⚠️ Ce lien a déjà été utilisé : il est personnel et ne sert qu'une fois. Cette conversation démarre "
    "donc sans le contexte de votre publication Mastodon. Si vous l'aviez ouvert vous-même, revenez-y "
    "depuis le navigateur utilisé la première fois."
)
LINK_INVALID = (
    "⚠️ Ce lien de contact n'est plus valable (il expire après 24 h) ou est incorrect : cette conversation "
    "démarre sans le contexte de votre publication Mastodon."
)
QUOTE_CHARS = 280


class LinkUnavailable(Exception):
    """The link cannot be joined: already used (``used``) or unknown/expired."""

    def __init__(self, used: bool) -> None:
        super().__init__(LINK_USED if used else LINK_INVALID)
        self.used = used


@dataclass(frozen=True)
class LinkView:
    """What a page opened with ``?token=…`` may do: join (fresh), resume (this browser), or neither."""

    status: Literal["fresh", "resume", "used", "invalid"]
    context: dict[str, Any] | None = None
    session: ChatSession | None = None


@dataclass(frozen=True)
class LinkOpening:
    """Result of the contact form sent with a link."""

    session: ChatSession
    welcome: str | None = None  # the acknowledgement of the post (first use)
    notice: str | None = None  # why the post context was not attached (link used or invalid)
    ticket: Ticket | None = None


def _quote(text: str) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + "…"


def welcome_text(context: dict[str, Any], ticket: Ticket | None) -> str:
    """The chat's first words after a link: the post quoted, its file number and delay, what comes next."""
    handle = context.get("handle") or "Mastodon"
    lines = [
        f"📣 Nous avons bien reçu votre message publié sur Mastodon ({handle}) :",
        f"« {_quote(context.get('complaint') or '')} »",
        "",
    ]
    if ticket is None:
        delay = pickup_delay(context.get("urgency"))
        lines += [
            "Aucun dossier n'a été ouvert pour le moment : notre assistant peut vous répondre tout de suite, "
            "posez-lui votre question ici.",
            f"Vous préférez qu'un conseiller s'en occupe ? Répondez « oui » : un dossier sera ouvert et un "
            f"conseiller vous répondra dans cette conversation sous {delay} au plus tard.",
        ]
    elif ticket.status in ("RESOLVED", "CLOSED"):
        lines += [
            f"🎫 Votre dossier n° {ticket.id} a déjà été traité par un conseiller. Si le problème persiste, "
            "dites-le ici : notre assistant vous répond et peut le transmettre à nouveau.",
        ]
    else:
        priority = Priority(ticket.priority)
        lines += [
            f"🎫 Votre dossier n° {ticket.id} est ouvert (priorité {PRIORITY_LABELS[priority].lower()}) : un "
            f"conseiller le prend en charge sous {SLA_HOURS[priority]} h au plus tard et vous répondra ici même, "
            "dans cette conversation.",
            "En attendant, vous pouvez ajouter des précisions (lieu, depuis quand, appareil concerné…) ; notre "
            "assistant répond aussi à vos questions.",
        ]
    return "\n".join(lines)


class ContactLinks:
    """Links from Mastodon replies into the chat, over the social service (tokens, posts) and the chat service."""

    def __init__(self, social: Any, chat: Any) -> None:
        self.social = social
        self.tokens = social.tokens
        self.chat = chat

    def view(self, token: str | None, bindings: Mapping[str, str] | None = None) -> LinkView:
        """Page load: what this browser, holding ``bindings`` ({conversation id: secret}), may do with the link."""
        link = self.tokens.lookup(token)
        if link is None or link.expired:
            return LinkView("invalid")
        if not link.used:
            return LinkView("fresh", context=link.context)
        binding = (bindings or {}).get(link.conversation_id) if link.conversation_id else None
        session = self._bound_session(link, binding)
        return LinkView("resume", context=link.context, session=session) if session else LinkView("used")

    def join(self, token: str, contact: Contact) -> LinkOpening:
        """First use: claim the link, join the post's conversation with this contact and acknowledge the post.

        Raises LinkUnavailable when the link is unknown, expired or already used (re-checked here,
        whatever the page showed when it was loaded).
        """
        link = self.tokens.lookup(token)
        if link is None or link.expired or link.used:
            raise LinkUnavailable(used=link is not None and link.used and not link.expired)
        conversation_id = self.social.conversation_for_link(link.context)
        if not self.tokens.claim(token, conversation_id):  # used or expired since the lookup
            latest = self.tokens.lookup(token)
            raise LinkUnavailable(used=latest is not None and latest.used and not latest.expired)
        try:
            session = self.chat.join(contact, conversation_id)
        except PermissionError:  # another link of the same post joined it first (a reply sent twice)
            raise LinkUnavailable(used=True) from None
        ticket = self.chat.tickets.for_conversation(conversation_id)
        welcome = welcome_text(link.context, ticket)
        if ticket is None:  # the welcome offers one: a "oui" opens it at the post's priority
            priority = ticket_priority(link.context.get("urgency")).value
            self.chat.conversations.update_context(conversation_id, {TICKET_OFFER_KEY: priority})
        meta = {"welcome": "mastodon", "ticket_id": ticket.id if ticket else None}
        self.chat.messages.add(conversation_id, "system", welcome, meta=meta)
        log.info("contact link joined conversation %s", conversation_id)
        return LinkOpening(session, welcome=welcome, ticket=ticket)

    def open(self, token: str, contact: Contact) -> LinkOpening:
        """Chat form sent from a link page: join (first use), else a plain conversation and the reason why."""
        try:
            return self.join(token, contact)
        except LinkUnavailable as exc:
            return LinkOpening(self.chat.start(contact), notice=str(exc))

    def bind(self, token: str | None, session: ChatSession | None) -> str | None:
        """The binding secret for the browser that holds the link's conversation (once; None otherwise)."""
        if not token or session is None:
            return None
        return self.tokens.bind(token, session.conversation_id)

    def _bound_session(self, link: ContactLink | None, binding: str | None) -> ChatSession | None:
        """The session of the link's conversation when ``binding`` is the one handed out at its first use."""
        if not self.tokens.is_bound(link, binding) or link.conversation_id is None:
            return None
        conversation = self.chat.conversations.get(link.conversation_id)
        if conversation is None or conversation.customer_id is None:
            return None
        return ChatSession(conversation.customer_id, conversation.id)
