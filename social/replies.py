"""French public replies to Mastodon complaints, one template per urgency, within 500 characters.

A draft holds the ``{lien}`` marker: the personal chat link is created when the reply is sent,
so its validity starts when the customer can see it (not when an agent drafted it).

A public reply only promises what the system does: HIGH urgency opens a ticket at once
(``opens_ticket``), so its reply says a file was opened and gives that ticket's pickup delay;
below HIGH no ticket exists until the customer asks for one in the chat, so the reply offers
the assistant and says a human takes over on request, within the delay of the ticket that
would then be opened. Delays come from the SLA table, never from the wording.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tickets.domain import SLA_HOURS, Priority

LINK_MARKER = "{lien}"
MAX_CHARS = 500  # Mastodon's default status limit
TAGS = "#SAVFree #Support"
TICKET_URGENCIES = frozenset({"HIGH"})  # urgencies whose complaint gets a ticket as soon as it is seen

TEMPLATES = {
    "HIGH": (
        "{handle} Nous sommes désolés pour cette situation. Un conseiller a ouvert un dossier prioritaire "
        "et le prendra en charge sous {delai}. Suivez-le en privé ici (lien personnel, valable {validite}) : "
        "{lien} {tags}"
    ),
    "MEDIUM": (
        "{handle} Désolés pour ce désagrément. Expliquez-nous votre souci en privé sur ce lien personnel "
        "(valable {validite}) : {lien} Notre assistant vous répond aussitôt et, si vous le demandez, "
        "un conseiller prend le relais sous {delai}. {tags}"
    ),
    "LOW": (
        "{handle} Merci pour votre message. Notre assistant peut vous aider en privé via ce lien personnel "
        "(valable {validite}) : {lien} Un conseiller peut prendre le relais sous {delai} si vous le demandez. "
        "{tags}"
    ),
}
SHORT_TEMPLATE = "{handle} Désolés pour ce souci. Écrivez-nous en privé (lien valable {validite}) : {lien} {tags}"


def opens_ticket(urgency: str | None) -> bool:
    """True when a complaint of this urgency gets a ticket on arrival (the reply then says so)."""
    return urgency in TICKET_URGENCIES


def ticket_priority(urgency: str | None) -> Priority:
    """Priority of the ticket opened for a post of this urgency (at once or on the customer's request)."""
    return Priority(urgency or "LOW")


def pickup_delay(urgency: str | None) -> str:
    """The SLA pickup delay of that ticket, in French: ``4 h``."""
    return f"{SLA_HOURS[ticket_priority(urgency)]} h"


def mention(acct: str) -> str:
    """``@user`` or ``@user@domain`` from an account's acct, so the author is notified."""
    return "@" + acct.lstrip("@")


def _fill(template: str, acct: str, urgency: str | None, link_hours: float) -> str:
    return (
        template.replace("{handle}", mention(acct))
        .replace("{tags}", TAGS)
        .replace("{delai}", pickup_delay(urgency))
        .replace("{validite}", f"{link_hours:g} h")
    )


def draft_reply(acct: str, urgency: str | None, link_hours: float = 24) -> str:
    """The public reply for a complaint of this urgency, with the ``{lien}`` marker for the link."""
    urgency = urgency if urgency in TEMPLATES else "LOW"
    return _fill(TEMPLATES[urgency], acct, urgency, link_hours)


def chat_link(public_url: str, token: str) -> str:
    """The personal chat URL: ``<public_url>?token=…``."""
    base = public_url.rstrip("/") + "/"
    return f"{base}?token={quote(token, safe='-_')}"


def fill_link(draft: str, link: str, acct: str, link_hours: float = 24) -> str:
    """Put the link into a draft; an over-long result falls back to the short template."""
    text = draft.replace(LINK_MARKER, link) if LINK_MARKER in draft else draft
    if len(text) <= MAX_CHARS:
        return text
    short = _fill(SHORT_TEMPLATE, acct, None, link_hours).replace(LINK_MARKER, link)
    if len(short) > MAX_CHARS:
        raise ValueError("reply exceeds 500 characters even with the short template (public_url too long?)")
    return short


def post_message(context: dict[str, Any]) -> str:
    """First message of a post's conversation: the post as written, its author and a link to it."""
    text = (context.get("complaint") or "").strip()
    author = context.get("handle") or "?"
    url = context.get("post_url")
    return f"{text}\n\n— {author} sur Mastodon" + (f" : {url}" if url else "")
