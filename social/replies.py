"""French public replies to Mastodon complaints, one template per urgency, within 500 characters.

A draft holds the ``{lien}`` marker: the personal chat link is created when the reply is sent,
so its 24 h validity starts when the customer can see it (not when an agent drafted it).
"""

from __future__ import annotations

from urllib.parse import quote

LINK_MARKER = "{lien}"
MAX_CHARS = 500  # Mastodon's default status limit
TAGS = "#SAVFree #Support"

TEMPLATES = {
    "HIGH": (
        "{handle} Nous sommes désolés pour cette situation, votre demande est traitée en priorité. "
        "Un conseiller a ouvert un dossier et revient vers vous sous 4 h. "
        "Continuez en privé ici (lien personnel, valable 24 h) : {lien} {tags}"
    ),
    "MEDIUM": (
        "{handle} Désolés pour ce désagrément. Expliquez-nous votre souci en privé sur ce lien personnel "
        "(valable 24 h) : {lien} Un conseiller vous répond sous 24 h. {tags}"
    ),
    "LOW": (
        "{handle} Merci pour votre message. Notre assistant et nos conseillers peuvent vous aider en privé "
        "via ce lien personnel (valable 24 h) : {lien} Réponse sous 48 h au plus tard. {tags}"
    ),
}
SHORT_TEMPLATE = "{handle} Désolés pour ce souci. Écrivez-nous en privé (lien valable 24 h) : {lien} {tags}"


def mention(acct: str) -> str:
    """``@user`` or ``@user@domain`` from an account's acct, so the author is notified."""
    return "@" + acct.lstrip("@")


def draft_reply(acct: str, urgency: str | None) -> str:
    """The public reply for a complaint of this urgency, with the ``{lien}`` marker for the link."""
    template = TEMPLATES.get(urgency or "LOW", TEMPLATES["LOW"])
    return template.replace("{handle}", mention(acct)).replace("{tags}", TAGS)


def chat_link(public_url: str, token: str) -> str:
    """The personal chat URL: ``<public_url>?token=…``."""
    base = public_url.rstrip("/") + "/"
    return f"{base}?token={quote(token, safe='-_')}"


def fill_link(draft: str, link: str, acct: str) -> str:
    """Put the link into a draft; an over-long result falls back to the short template."""
    text = draft.replace(LINK_MARKER, link) if LINK_MARKER in draft else draft
    if len(text) <= MAX_CHARS:
        return text
    short = SHORT_TEMPLATE.replace("{handle}", mention(acct)).replace("{tags}", TAGS).replace(LINK_MARKER, link)
    if len(short) > MAX_CHARS:
        raise ValueError("reply exceeds 500 characters even with the short template (public_url too long?)")
    return short
