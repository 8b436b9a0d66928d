"""Social tab (agents): monitored Mastodon posts, reply queue (approve / edit / send), monitor status."""

from __future__ import annotations

import re

import gradio as gr
import pandas as pd

from social.service import ReplyError
from social.store import PostFilter
from tickets.users import AccessDenied, require
from ui.chat_format import plain_markdown

URGENCY_LABELS = {"HIGH": "🔴 Haute", "MEDIUM": "🟠 Moyenne", "LOW": "🟢 Basse"}
REPLY_LABELS = {
    "none": "Aucune",
    "pending": "À valider",
    "queued": "Approuvée",
    "sending": "Envoi en cours",
    "sent": "Envoyée",
    "skipped": "Ignorée",
    "failed": "Échec",
}
ALL = "Toutes"
COLUMNS = ["N°", "Date", "Compte", "Publication", "Score", "Urgence", "Réponse", "Ticket", "Raisons"]
QUEUE_STATES = ("pending", "queued", "failed")
SAFE_URL = re.compile(r"^https?://[^\s<>()\[\]\"'`\\]+$")


def _choices(labels: dict[str, str]) -> list[tuple[str, str]]:
    return [(ALL, ALL), *[(label, key) for key, label in labels.items()]]


def posts_frame(posts) -> pd.DataFrame:
    """Table rows of the post list (text shortened, labels in French)."""
    rows = [
        [
            p.id,
            p.created_at.strftime("%d/%m %H:%M"),
            "@" + p.account,
            p.content[:160],
            round(p.complaint_score, 2),
            URGENCY_LABELS.get(p.urgency, "—"),
            REPLY_LABELS.get(p.reply_status, p.reply_status),
            p.ticket_id or "",
            p.reason,
        ]
        for p in posts
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def monitor_markdown(services) -> str:
    """Monitor status: running, connected, last seen ids, last error (never the token)."""
    monitor = services.social_monitor
    if monitor is None:
        return (
            "**Surveillance Mastodon : non configurée** (définissez MOBILIA_MASTODON__INSTANCE_URL et "
            "MOBILIA_MASTODON__ACCESS_TOKEN)."
        )
    st = monitor.status()
    state = "🟢 en cours" if st.running and st.connected else "🟠 reconnexion" if st.running else "🔴 arrêtée"
    seen = ", ".join(f"`{k}` → {v}" for k, v in st.last_seen.items()) or "aucun"
    text = (
        f"**Surveillance Mastodon : {state}** — mode de réponse `{services.settings.mastodon.reply_mode}`, "
        f"{st.processed} publications traitées, {st.reconnects} reconnexions.\n\nDerniers identifiants vus : {seen}"
    )
    return text + (f"\n\n⚠️ Dernière erreur : {plain_markdown(st.last_error)}" if st.last_error else "")


def post_markdown(post) -> str:
    """A post for the reply queue: account, link and text from Mastodon shown as text, never as Markdown or HTML."""
    link = f" ([voir la publication]({post.url}))" if SAFE_URL.match(post.url or "") else ""
    return f"**@{plain_markdown(post.account)}**{link} : {plain_markdown(post.content)}\n\n_{plain_markdown(post.reason)}_"


class SocialCallbacks:
    """Thin callbacks over SocialService; each re-checks the agent's role server-side."""

    def __init__(self, services) -> None:
        self.services = services
        self.social = services.social

    def _check(self, principal) -> None:
        require(self.services.staff.current(principal), "social")

    def refresh(self, principal, complaints_only: bool, urgency: str, reply_status: str):
        """Post list, reply queue choices and monitor status."""
        try:
            self._check(principal)
        except AccessDenied as exc:
            return pd.DataFrame(columns=COLUMNS), gr.update(choices=[], value=None), "", f"⚠️ {exc}"
        flt = PostFilter(
            complaints_only=complaints_only,
            urgency=None if urgency == ALL else urgency,
            reply_status=None if reply_status == ALL else reply_status,
        )
        queue = self.social.posts.with_status(QUEUE_STATES)
        choices = [
            (f"n° {p.id} — @{p.account} — {REPLY_LABELS[p.reply_status]} — {p.content[:60]}", p.id) for p in queue
        ]
        return (
            posts_frame(self.social.list_posts(flt)),
            gr.update(choices=choices, value=None),
            monitor_markdown(self.services),
            "",
        )

    def select(self, principal, post_id):
        """Show the selected post and its draft reply."""
        try:
            self._check(principal)
        except AccessDenied as exc:
            return "", "", f"⚠️ {exc}"
        post = self.social.posts.get(post_id) if post_id is not None else None
        if post is None:
            return "", "", gr.update()  # keep the last action's message
        return post_markdown(post), post.reply_text or "", gr.update()

    def act(self, action: str):
        """Build the callback of one queue button: approve and send, save the draft, or skip."""

        def run(principal, post_id, text: str):
            try:
                self._check(principal)
                if post_id is None:
                    return "⚠️ Choisissez d'abord une publication dans la file."
                if action == "send":
                    post = self.social.send_now(post_id, text)
                    return f"✅ Réponse publiée (statut {post.reply_status_id})."
                if action == "edit":
                    self.social.edit(post_id, text)
                    return "💾 Brouillon enregistré."
                self.social.skip(post_id)
                return "🚫 Publication ignorée : aucune réponse publique."
            except (AccessDenied, ReplyError) as exc:
                return f"⚠️ {exc}"

        return run


def create_social_tab(services, staff: gr.State) -> dict[str, gr.Component]:
    """Post list with filters, reply queue and monitor status."""
    cb = SocialCallbacks(services)
    monitor = gr.Markdown(elem_id="social-monitor")
    with gr.Row():
        complaints = gr.Checkbox(label="Réclamations uniquement", value=False, elem_id="social-complaints")
        urgency = gr.Dropdown(_choices(URGENCY_LABELS), value=ALL, label="Urgence", elem_id="social-urgency")
        reply_status = gr.Dropdown(_choices(REPLY_LABELS), value=ALL, label="Réponse", elem_id="social-reply-status")
        refresh = gr.Button("🔄 Actualiser", elem_id="social-refresh")
    table = gr.Dataframe(
        value=pd.DataFrame(columns=COLUMNS),
        interactive=False,
        wrap=True,
        elem_id="social-posts",
        label="Publications suivies",
    )
    queue, draft, message, actions = _reply_queue(cb, staff)
    filters = [staff, complaints, urgency, reply_status]
    outputs = [table, queue, monitor, message]
    for trigger in (refresh.click, complaints.change, urgency.change, reply_status.change, staff.change):
        trigger(cb.refresh, filters, outputs, api_name=False)
    for event in actions:  # after an action, reload the list but keep the action's message
        event.then(lambda *args: cb.refresh(*args)[:3], filters, outputs[:3], api_name=False)
    return {"table": table, "queue": queue, "draft": draft, "monitor": monitor, "message": message}


def _reply_queue(cb: SocialCallbacks, staff: gr.State):
    """Reply queue: pick a post, edit the draft ({lien} = personal chat link), approve and send or skip."""
    gr.Markdown(
        "### File des réponses\nLe marqueur `{lien}` est remplacé à l'envoi par le lien de chat personnel "
        "(valable 24 h). Une publication ne reçoit jamais deux réponses."
    )
    queue = gr.Dropdown(choices=[], label="Publication à traiter", elem_id="social-queue")
    post = gr.Markdown(elem_id="social-post")
    draft = gr.Textbox(label="Réponse publique", lines=4, max_lines=8, elem_id="social-draft")
    with gr.Row():
        send = gr.Button("✅ Approuver et envoyer", variant="primary", elem_id="social-send")
        save = gr.Button("💾 Enregistrer le brouillon", elem_id="social-save")
        skip = gr.Button("🚫 Ne pas répondre", variant="stop", elem_id="social-skip")
    message = gr.Markdown(elem_id="social-message")
    queue.change(cb.select, [staff, queue], [post, draft, message], api_name=False)
    actions = [
        button.click(cb.act(action), [staff, queue, draft], message, api_name=False)
        for button, action in ((send, "send"), (save, "edit"), (skip, "skip"))
    ]
    return queue, draft, message, actions
