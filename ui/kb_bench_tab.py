"""Retrieval test bench: one question on the published KB and on the draft, side by side."""

from __future__ import annotations

import gradio as gr

from tickets.users import AccessDenied, require
from ui.kb_format import bench_markdown


def create_kb_bench(services, staff: gr.State, drafts) -> dict[str, gr.Component]:
    """Question box and the two sides (scores, rules fired, the customer's exact answer)."""
    question = gr.Textbox(label="Question d'un client", elem_id="kbb-question")
    run = gr.Button("Tester", variant="primary", elem_id="kbb-run")
    with gr.Row():
        published = gr.Markdown(elem_id="kbb-published")
        draft = gr.Markdown(elem_id="kbb-draft")

    def test(principal, text, progress=gr.Progress()):  # noqa: B008 (Gradio injects it)
        try:
            require(services.staff.current(principal), "knowledge")
        except AccessDenied as exc:
            return f"⚠️ {exc}", ""
        if not (text or "").strip():
            return "⚠️ Saisissez une question.", ""
        progress(0.1, desc="Index du brouillon")
        sides = drafts.compare(services.engine, text)
        return bench_markdown(sides["published"], "Base publiée"), bench_markdown(sides["draft"], "Brouillon")

    run.click(test, [staff, question], [published, draft], api_name=False)
    return {"question": question, "run": run}
