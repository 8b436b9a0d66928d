"""Knowledge-base tab (trainers, admins): editor, test bench, gaps, gated publication; the index state (admins)."""

from __future__ import annotations

import json

import gradio as gr

from rag.index import build_index, current_build
from rag.kb_bench import DraftEngines
from rag.sources import SourceError
from tickets.users import AccessDenied, require
from ui.kb_bench_tab import create_kb_bench
from ui.kb_editor import create_kb_editor
from ui.kb_gaps_tab import create_kb_gaps
from ui.kb_publish_tab import create_kb_publish


def index_summary(config) -> str:
    """Markdown summary of the build in service."""
    path = current_build(config.index_dir)
    if path is None:
        return "Aucun index construit pour l'instant."
    m = json.loads((path / "manifest.json").read_text())
    return (
        f"**Index en service** : `{m['build']}` — {m['entries']} entrées, {m['views']} passages, "
        f"modèle `{m['embedding_model']}`, construit le {m['built_at'].replace('T', ' à ').rstrip('Z')} UTC.\n\n"
        "Source : la version publiée de la base (base de données)."
    )


def create_kb_tab(services, staff: gr.State) -> dict[str, gr.Component]:
    """Sub-tabs of the KB work (role re-checked in every callback), then the index state."""
    with gr.Tabs():
        with gr.Tab("✏️ Éditeur", id="kb-editor"):
            create_kb_editor(services, staff)
        with gr.Tab("🔎 Banc de test", id="kb-bench"):
            create_kb_bench(services, staff, DraftEngines(services.publisher))
        with gr.Tab("🕳️ Lacunes", id="kb-gaps"):
            create_kb_gaps(services, staff)
        with gr.Tab("🚀 Publication", id="kb-publish") as publish_tab:
            create_kb_publish(services, staff, publish_tab)
        with gr.Tab("⚙️ Index", id="kb-index"):
            return create_kb_index(services, staff)


def create_kb_index(services, staff: gr.State) -> dict[str, gr.Component]:
    """Index status and rebuild of the published version (admin only, checked server-side)."""
    config = services.settings.rag
    summary = gr.Markdown(elem_id="kb-summary")
    force = gr.Checkbox(label="Reconstruire même si la base n'a pas changé", value=False, elem_id="kb-force")
    rebuild = gr.Button("Mettre à jour l'index", variant="primary", elem_id="kb-rebuild")
    result = gr.Markdown(elem_id="kb-result")

    def show(principal):
        try:
            require(services.staff.current(principal), "admin")
        except AccessDenied as exc:
            return f"⚠️ {exc}"
        return index_summary(config)

    def run(principal, forced: bool, progress=gr.Progress()):  # noqa: B008 (Gradio injects it)
        try:
            require(services.staff.current(principal), "admin")
            report = build_index(
                config, services.engine.embedder, rebuild=forced, progress=lambda f, d: progress(f, desc=d),
                entries=services.kb.published_entries() or None,
            )
        except AccessDenied as exc:
            return gr.update(), f"⚠️ {exc}"
        except (SourceError, ValueError) as exc:
            return (
                gr.update(),
                f"⚠️ La base de connaissances contient une erreur, l'index actuel reste en service : {exc}",
            )
        services.index_rebuilt()  # served here at once, and by every other replica within seconds
        done = "reconstruit" if report.rebuilt else "déjà à jour"
        return index_summary(config), f"✅ Index {done} ({report.entries} entrées, {report.seconds:.1f} s)."

    staff.change(show, staff, summary, api_name=False)
    rebuild.click(run, [staff, force], [summary, result], api_name=False)
    return {"summary": summary, "rebuild": rebuild}
