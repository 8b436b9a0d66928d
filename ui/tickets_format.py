"""How the agent console shows tickets: queue rows, SLA countdowns, detail panels (pure functions)."""

from __future__ import annotations

import html
from datetime import datetime
from zoneinfo import ZoneInfo

from storage.models import Message, TicketEvent
from tickets import PRIORITY_LABELS, STATUS_LABELS, Priority, QueuePage, TicketDetail, TicketStatus
from ui.chat_format import plain_markdown

PARIS = ZoneInfo("Europe/Paris")
QUEUE_HEADERS = ["N°", "Priorité", "Statut", "Échéance SLA", "Catégorie", "Client", "Résumé", "Assigné à", "Créé le"]
PRIORITY_ICONS = {"URGENT": "🔴", "HIGH": "🟠", "MEDIUM": "🟡", "LOW": "🟢"}
EVENT_LABELS = {
    "created": "Création",
    "status": "Statut",
    "assigned": "Assignation",
    "note": "Note",
    "reply": "Réponse au client",
}
CONVERSATION_LABELS = {
    "bot": "🤖 l'assistant répond",
    "escalated": "⏳ en attente d'un conseiller (l'assistant répond encore)",
    "agent": "👤 un conseiller répond (assistant en pause)",
    "closed": "conversation close",
}
FINISHED = (TicketStatus.RESOLVED.value, TicketStatus.CLOSED.value)
SHARED_PHONE_WARNING = "⚠️ ce numéro a été utilisé avec un autre nom"


def local(dt: datetime) -> str:
    """A timestamp in Paris time, e.g. "10/03 10:05"."""
    return dt.astimezone(PARIS).strftime("%d/%m %H:%M")


def duration(seconds: float) -> str:
    """A short French duration: "45 min", "2 h 05", "3 j 4 h"."""
    minutes = int(abs(seconds) // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d}"
    days, hours = divmod(hours, 24)
    return f"{days} j {hours} h"


def sla_label(status: str, due: datetime, now: datetime) -> str:
    """Countdown to the SLA deadline, "⚠️ dépassé de …" once late, "—" when finished."""
    if status in FINISHED:
        return "—"
    left = (due - now).total_seconds()
    return f"⚠️ dépassé de {duration(left)}" if left < 0 else f"⏱ dans {duration(left)}"


def priority_label(priority: str) -> str:
    """Icon and French name of a priority."""
    return f"{PRIORITY_ICONS.get(priority, '')} {PRIORITY_LABELS[Priority(priority)]}".strip()


def status_label(status: str) -> str:
    """French name of a status."""
    return STATUS_LABELS[TicketStatus(status)]


def _excerpt(text: str, size: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= size else text[: size - 1] + "…"


def queue_rows(page: QueuePage, now: datetime) -> list[list]:
    """Rows of the queue table, in QUEUE_HEADERS order."""
    return [
        [
            row.id,
            priority_label(row.priority),
            status_label(row.status),
            sla_label(row.status, row.sla_due_at, now),
            row.category,
            row.customer_name or "—",
            _excerpt(row.summary),
            row.assignee or "—",
            local(row.created_at),
        ]
        for row in page.rows
    ]


def page_info(page: QueuePage) -> str:
    """ "Page 1 / 3 · 42 tickets"."""
    plural = "s" if page.total > 1 else ""
    return f"Page {page.page} / {page.pages} · {page.total} ticket{plural}"


def detail_header(detail: TicketDetail, now: datetime) -> str:
    """Title block of the detail panel."""
    t = detail.ticket
    sla = sla_label(t.status, t.sla_due_at, now)
    conversation = CONVERSATION_LABELS.get(detail.conversation_status or "", "aucune conversation liée")
    lines = [
        f"### Ticket n° {t.id} — {html.escape(t.category)}",
        f"**Priorité** {priority_label(t.priority)} · **Statut** {status_label(t.status)} · "
        f"**SLA** {local(t.sla_due_at)} ({sla}) · **Assigné à** {html.escape(t.assignee or '—')}",
        f"**Conversation** : {conversation}",
        f"**Résumé** : {plain_markdown(t.summary)}",
    ]
    if t.csat is not None:
        lines.append(f"**Satisfaction client** : {'⭐' * t.csat} ({t.csat}/5)")
    return "\n\n".join(lines)


def customer_markdown(detail: TicketDetail) -> str:
    """Contact card: what the conversation was opened with, flagged when the phone came with another name."""
    c = detail.contact
    if c is None:
        return "#### Client\nAucun client associé."
    email = plain_markdown(c.email) if c.email else "—"
    card = f"#### Client\n**{plain_markdown(c.full_name)}**  \n📞 {plain_markdown(c.phone)}  \n✉️ {email}"
    if c.name_conflict:
        others = ", ".join(f"« {plain_markdown(name)} »" for name in c.other_names)
        card += f"\n\n**{SHARED_PHONE_WARNING}** : {others}. Vérifiez l'identité avant de communiquer des informations."
    return card


def events_markdown(events: list[TicketEvent]) -> str:
    """The audit trail, newest last."""
    if not events:
        return "Aucun événement."
    lines = [
        f"- `{local(e.created_at)}` **{EVENT_LABELS.get(e.kind, e.kind)}** ({html.escape(e.actor)})"
        + (f" : {plain_markdown(_excerpt(e.body, 160))}" if e.body else "")
        for e in events
    ]
    return "\n".join(lines)


def conversation_messages(messages: list[Message]) -> list[dict]:
    """The conversation for a gr.Chatbot: customer on the right, bot, agent and notices on the left.

    Customer and Mastodon text is shown as typed (``plain_markdown``): never HTML, links or formatting.
    """
    shown = []
    for m in messages:
        if m.role == "user":
            shown.append({"role": "user", "content": plain_markdown(m.content)})
        elif m.role == "agent":
            agent = html.escape((m.meta or {}).get("agent", ""))
            shown.append({"role": "assistant", "content": f"**👤 Conseiller {agent}** : {plain_markdown(m.content)}"})
        elif m.role == "system":
            shown.append({"role": "assistant", "content": f"*{plain_markdown(m.content)}*"})
        else:
            shown.append({"role": "assistant", "content": f"🤖 {m.content}"})
    return shown


def first_name(detail: TicketDetail | None) -> str | None:
    """The customer's first name, to greet them in canned replies."""
    if detail is None or detail.contact is None:
        return None
    return detail.contact.full_name.split(" ")[0] or None
