"""How chat messages are shown: escaped customer text, answers with sources and links."""

from __future__ import annotations

import html
import re

from rag.answer import Answer
from rag.sources import DEFAULT_LINKS

WELCOME = (
    "Bonjour, je suis l'assistant du service client Free Mobile. Posez votre question (facture, "
    "réseau, forfait, options, résiliation…) ; je réponds à partir de notre base d'aide et je vous "
    "mets en relation avec un conseiller si nécessaire."
)


# ASCII punctuation that Markdown may read as syntax (links, images, emphasis, code, headings, lists,
# tables, autolinks "https://", LaTeX "$"); "&", "<", ">" and quotes are left to html.escape.
_MARKDOWN_SYNTAX = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:=$^])")


def customer_text(text: str) -> str:
    """Customer input is shown as typed: HTML and scripts are escaped, never rendered."""
    return html.escape(text)


def plain_markdown(text: str | None) -> str:
    """Untrusted text (Mastodon posts, customer messages) for a staff Markdown view, shown exactly as typed.

    HTML is escaped and every Markdown sign is backslash-escaped, so ``<img onerror=…>`` stays text
    and ``[Cliquez ici](https://…)`` never becomes a link, an image or formatting.
    """
    return html.escape(_MARKDOWN_SYNTAX.sub(r"\\\1", text or ""))


_CITATION = re.compile(r"\s*\[([\w.#-]+)\]")


def _safe_url(url: str) -> str:
    return url if url.startswith(("https://", "http://")) else DEFAULT_LINKS["faq"]


def _anchor(label: str, url: str) -> str:
    return f'<a href="{html.escape(_safe_url(url), quote=True)}" target="_blank" rel="noopener noreferrer">{html.escape(label)}</a>'


def answer_markdown(answer: Answer) -> str:
    """What the customer sees: the answer, then its sources and useful links folded in a <details>.

    Sources are readable titles linking to their page, never internal ids or scores (staff views
    show those); generated text is shown as text, its "[id]" citations replaced by the source list.
    Folded, the list does not push the answer out of a phone-sized bubble.
    """
    text = answer.text
    if answer.mode_used == "generative":
        known = {s.id for s in answer.sources}
        cited = {m.group(1) for m in _CITATION.finditer(text) if m.group(1) in known}
        text = html.escape(_CITATION.sub(lambda m: "" if m.group(1) in known else m.group(0), text))
        shown = [s for s in answer.sources if s.id in cited or s.used]
    else:
        shown = [s for s in answer.sources if s.used]
    items = [_anchor(s.label or s.title, s.url or DEFAULT_LINKS["faq"]) for s in shown]
    links = [_anchor(link["label"], link["url"]) for link in answer.links]
    if not items and not links:
        return text
    summary = f"Sources ({len(items)}) et liens utiles" if items else "Liens utiles"
    body = []
    if items:
        body.append("<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>")
    if links:
        body.append("<p>" + " · ".join(links) + "</p>")
    return f'{text}\n\n<details class="mc-sources"><summary>{summary}</summary>{"".join(body)}</details>'


def errors_markdown(errors: dict[str, str]) -> str:
    """Form errors as a French bullet list."""
    return "\n".join(f"- ⚠️ {message}" for message in errors.values())


def pushed_markdown(role: str, content: str) -> str:
    """An agent reply ("Conseiller" prefix) or a ticket notice pushed into the customer's chat, as text."""
    if role == "agent":
        return f"**👤 Conseiller** : {html.escape(content)}"
    return f"*{html.escape(content)}*"


def link_welcome_markdown(first_name: str, welcome: str | None, notice: str | None = None) -> str:
    """First bubble after a Mastodon link: greeting, then the acknowledgement of the post (all shown as text)."""
    parts = [f"Bonjour {customer_text(first_name)} !"]
    if welcome:
        parts.append(plain_markdown(welcome))
    else:
        parts.append(WELCOME)
    if notice:
        parts.append(plain_markdown(notice))
    return "\n\n".join(parts)


def history_messages(messages: list) -> tuple[list[dict], list[int | None]]:
    """A stored conversation as chatbot messages and their feedback ids (a conversation resumed through its link)."""
    history: list[dict] = []
    ids: list[int | None] = []
    for m in messages:
        meta = m.meta or {}
        if m.role == "user":
            history.append({"role": "user", "content": customer_text(m.content)})
            ids.append(None)
        elif m.role == "assistant":
            generated = meta.get("mode_used") == "generative"
            history.append({"role": "assistant", "content": html.escape(m.content) if generated else m.content})
            ids.append(m.id)
        else:  # agent replies, ticket notices, the link's welcome
            text = plain_markdown(m.content) if meta.get("welcome") else pushed_markdown(m.role, m.content)
            history.append({"role": "assistant", "content": text})
            ids.append(None)
    return history, ids
