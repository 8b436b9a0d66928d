"""How chat messages are shown: escaped customer text, answers with sources and links."""

from __future__ import annotations

import html

from rag.answer import Answer

WELCOME = (
    "Bonjour, je suis l'assistant du service client Free Mobile. Posez votre question (facture, "
    "réseau, forfait, options, résiliation…) ; je réponds à partir de notre base d'aide et je vous "
    "mets en relation avec un conseiller si nécessaire."
)


def customer_text(text: str) -> str:
    """Customer input is shown as typed: HTML and scripts are escaped, never rendered."""
    return html.escape(text)


def answer_markdown(answer: Answer) -> str:
    """Answer text followed by its sources and suggested links (generated text is shown as text)."""
    parts = [html.escape(answer.text) if answer.mode_used == "generative" else answer.text]
    if answer.sources:
        cited = " · ".join(f"{html.escape(s.title)} (`{s.id}`, {s.score:.2f})" for s in answer.sources)
        parts.append(f"**Sources** : {cited}")
    if answer.links:
        links = " · ".join(f"[{html.escape(link['label'])}]({link['url']})" for link in answer.links)
        parts.append(f"**Liens utiles** : {links}")
    return "\n\n".join(parts)


def errors_markdown(errors: dict[str, str]) -> str:
    """Form errors as a French bullet list."""
    return "\n".join(f"- ⚠️ {message}" for message in errors.values())


def pushed_markdown(role: str, content: str) -> str:
    """An agent reply ("Conseiller" prefix) or a ticket notice pushed into the customer's chat, as text."""
    if role == "agent":
        return f"**👤 Conseiller** : {html.escape(content)}"
    return f"*{html.escape(content)}*"
