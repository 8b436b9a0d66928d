"""Publication of the KB behind the evaluation gate, admin override, rollback and journal."""

from __future__ import annotations

import gradio as gr

from rag.kb import KbError
from tickets.users import AccessDenied, require
from ui.kb_format import gate_markdown, journal_markdown, pending_markdown


def create_kb_publish(services, staff: gr.State, tab: gr.Tab | None = None) -> dict[str, gr.Component]:
    """Pending changes, publish / rollback buttons, the gate's verdict and the journal (refreshed when `tab` opens)."""
    pending = gr.Markdown(elem_id="kbp-pending")
    note = gr.Textbox(label="Note de publication", elem_id="kbp-note")
    override = gr.Checkbox(label="Publier malgré un refus (administrateur, consigné au journal)", elem_id="kbp-override")
    with gr.Row():
        publish = gr.Button("Évaluer et publier", variant="primary", elem_id="kbp-publish")
        rollback = gr.Button("Revenir à la publication précédente", variant="stop", elem_id="kbp-rollback")
    result = gr.Markdown(elem_id="kbp-result")
    journal = gr.Markdown(elem_id="kbp-journal")

    def state():
        return pending_markdown(services.kb.pending()), journal_markdown(services.kb.journal())

    def run(principal, text, forced, progress=gr.Progress()):  # noqa: B008 (Gradio injects it)
        try:
            user = require(services.staff.current(principal), "knowledge")
            progress(0.1, desc="Index candidat et évaluation sur les jeux d'évaluation")
            verdict = services.publisher.publish(author=user.username, role=user.role, override=forced, note=text)
        except (AccessDenied, KbError) as exc:
            return f"⚠️ {exc}", gr.update(), gr.update()
        refused = "" if verdict.passed or forced else "\n\n⛔ Rien n'a été publié."
        return gate_markdown(verdict) + refused, *state()

    def undo(principal):
        try:
            user = require(services.staff.current(principal), "knowledge")
            version = services.publisher.rollback(author=user.username, role=user.role)
        except (AccessDenied, KbError) as exc:
            return f"⚠️ {exc}", gr.update(), gr.update()
        return f"✅ Version {version} de nouveau en service.", *state()

    def show(principal):
        try:
            require(services.staff.current(principal), "knowledge")
        except AccessDenied:
            return "", ""
        return state()

    publish.click(run, [staff, note, override], [result, pending, journal], api_name=False)
    rollback.click(undo, staff, [result, pending, journal], api_name=False)
    staff.change(show, staff, [pending, journal], api_name=False)
    if tab is not None:
        tab.select(show, staff, [pending, journal], api_name=False)
    return {"publish": publish, "result": result, "pending": pending}
