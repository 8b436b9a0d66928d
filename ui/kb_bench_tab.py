"""Retrieval test bench: one question on the published KB and on the draft, side by side."""

from __future__ import annotations

import gradio as gr

from tickets.users import AccessDenied, require
from ui.kb_format import BENCH_COLUMNS, bench_hits, bench_markdown

SIDES = (("published", "Base publiée"), ("draft", "Brouillon (base de travail)"))


def create_kb_bench(services, staff: gr.State, drafts) -> dict[str, gr.Component]:
    """Question box and the two sides (scores, rules fired, the customer's exact answer)."""
    question = gr.Textbox(label="Question d'un client", elem_id="kbb-question")
    run = gr.Button("Tester", variant="primary", elem_id="kbb-run")
    outputs = []
    with gr.Row(equal_height=False):
        for key, label in SIDES:
            with gr.Column(elem_id=f"kbb-{key}"):
                gr.Markdown(f"### {label}")
                hits = gr.Dataframe(headers=BENCH_COLUMNS, interactive=False, wrap=True, show_label=False,
                                    column_widths=["25%", "27%", "15%", "15%", "18%"])  # fmt: skip
                rules = gr.Markdown()
            outputs += [hits, rules]

    def test(principal, text, progress=gr.Progress()):  # noqa: B008 (Gradio injects it)
        try:
            require(services.staff.current(principal), "knowledge")
        except AccessDenied as exc:
            return gr.update(), f"⚠️ {exc}", gr.update(), ""
        if not (text or "").strip():
            return gr.update(), "⚠️ Saisissez une question.", gr.update(), ""
        progress(0.1, desc="Index du brouillon")
        sides = drafts.compare(services.engine, text)
        return (bench_hits(sides["published"]), bench_markdown(sides["published"]), bench_hits(sides["draft"]),
                bench_markdown(sides["draft"]))  # fmt: skip

    run.click(test, [staff, question], outputs, api_name=False)
    question.submit(test, [staff, question], outputs, api_name=False)
    return {"question": question, "run": run}
