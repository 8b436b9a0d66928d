"""Datasets tab (trainers, admins): the review queue, then the SFT dataset build with its report.

Callbacks are thin: the role check (every time, server-side), then ``training.review.ReviewQueue``
(candidates, approvals to the training set and/or the KB as drafts) or
``training.review.build_published`` (the published KB + approved reviews + resolved tickets).
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from tickets.users import AccessDenied, require
from training.config import ConfigError, DataBuildConfig, load_config, resolve_path
from training.review import ReviewError, ReviewQueue, build_published
from ui.datasets_format import (
    PREVIEW_COLUMNS,
    QUEUE_COLUMNS,
    counts_figure,
    preview_rows,
    queue_table,
    summary_markdown,
)

DESTINATIONS = [("Jeu d'entraînement", "training"), ("Base de connaissances (brouillon)", "kb"), ("Les deux", "both")]
AREA = "datasets"


class DatasetsCallbacks:
    """Role check + queue / build calls; every method returns plain values for the components."""

    def __init__(self, services, config_path: Path | None = None) -> None:
        self.services = services
        self.config_path = config_path or services.settings.data_config  # MOBILIA_DATA_CONFIG
        self.queue = ReviewQueue(services.db, kb=getattr(services, "kb", None),
                                 min_confidence=services.settings.rag.min_confidence)  # fmt: skip

    def _user(self, principal):
        return require(self.services.staff.current(principal), AREA)

    def refresh(self, principal):
        """(candidates, table rows, message)."""
        try:
            self._user(principal)
        except AccessDenied as exc:
            return [], gr.update(), f"⚠️ {exc}"
        found = [c.to_dict() for c in self.queue.candidates()]
        return found, queue_table(found), f"{len(found)} élément(s) à revoir."

    def _pick(self, found: list[dict], number) -> dict:
        if not found or not 1 <= int(number or 0) <= len(found):
            raise ReviewError("Choisissez un numéro de la liste.")
        return found[int(number) - 1]

    def open(self, principal, found: list[dict], number):
        """(question, context, reference, category, message) of one candidate."""
        try:
            self._user(principal)
            item = self._pick(found, number)
        except (AccessDenied, ReviewError) as exc:
            return gr.update(), gr.update(), gr.update(), gr.update(), f"⚠️ {exc}"
        context = "\n\n".join(x for x in (f"Réponse du bot :\n{item['bot_answer']}" if item["bot_answer"] else "",
                                          item["context"]) if x)  # fmt: skip
        return item["question"], context, item["suggestion"], item["category"], ""

    def decide(self, principal, found: list[dict], number, question, reference, category, destination, entry_id,
               approve: bool):  # fmt: skip
        """Approve (or reject) one candidate: (candidates, rows, message, question, context, reference, entry).

        After a success the queue is re-read and the form emptied (no second approval by mistake).
        """
        try:
            user = self._user(principal)
            item = self._pick(found, number)
            if approve:
                note = self.queue.approve(item["key"], reference, destination or "", reviewer=user.username,
                                          role=user.role, question=question, entry_id=entry_id or "",
                                          category=category or "")  # fmt: skip
            else:
                self.queue.reject(item["key"], reviewer=user.username, role=user.role)
                note = "Élément rejeté."
        except (AccessDenied, ReviewError) as exc:
            return gr.update(), gr.update(), f"⚠️ {exc}", *[gr.update()] * 4
        fresh = [c.to_dict() for c in self.queue.candidates()]
        return fresh, queue_table(fresh), f"✅ {note} {len(fresh)} élément(s) restant(s).", "", "", "", ""

    def build(self, principal, progress=None):
        """(summary, figure, preview rows) of a fresh build."""
        try:
            self._user(principal)
            config = load_config(DataBuildConfig, resolve_path(self.config_path))
            tell = (lambda f, d: progress(f, desc=d)) if progress is not None else None
            report = build_published(config, self.services.settings.database_url, db=self.services.db,
                                     kb=getattr(self.services, "kb", None), progress=tell)  # fmt: skip
        except (AccessDenied, ConfigError) as exc:
            return f"⚠️ {exc}", None, gr.update()
        return summary_markdown(report.stats), counts_figure(report.stats), preview_rows(report.out_dir)


def row_number(evt: gr.SelectData):
    """The N° (first column) of a clicked table row."""
    return int(evt.row_value[0]) if evt.row_value else gr.update()


def create_datasets_tab(services, staff: gr.State) -> dict[str, gr.Component]:
    """Review queue, then the dataset build."""
    cb = DatasetsCallbacks(services)
    found = gr.State([])
    with gr.Tabs():
        with gr.Tab("📝 File de revue", id="ds-review"):
            ui = _review_section(cb, staff, found)
        with gr.Tab("🏗️ Construction du jeu", id="ds-build"):
            ui |= _build_section(cb, staff)
    return ui


def _review_section(cb: DatasetsCallbacks, staff: gr.State, found: gr.State) -> dict[str, gr.Component]:
    gr.Markdown("Réponses notées 👎, escalades résolues par un conseiller et questions restées sans bonne réponse. "
                "Tout est anonymisé avant affichage et avant enregistrement.")  # fmt: skip
    refresh = gr.Button("Actualiser la file", elem_id="dsr-refresh")
    table = gr.Dataframe(headers=QUEUE_COLUMNS, interactive=False, wrap=True, max_height=420, elem_id="dsr-table",
                         label="Cliquez sur une ligne pour l'ouvrir", column_widths=["5%", "13%", "11%", "30%", "29%", "12%"])  # fmt: skip
    with gr.Row():
        number = gr.Number(label="N° de l'élément", value=1, precision=0, scale=1, elem_id="dsr-number")
        open_button = gr.Button("Ouvrir", scale=1, elem_id="dsr-open")
    with gr.Row():
        question = gr.Textbox(label="Question du client (modifiable)", lines=3, elem_id="dsr-question")
        context = gr.Textbox(label="Contexte (réponse du bot, commentaire, résolution du conseiller)", lines=6,
                             interactive=False, elem_id="dsr-context")  # fmt: skip
    reference = gr.Textbox(label="Réponse de référence", lines=5, elem_id="dsr-reference")
    with gr.Row():
        category = gr.Textbox(label="Catégorie", elem_id="dsr-category")
        destination = gr.Radio(DESTINATIONS, value="training", label="Approuver pour", elem_id="dsr-destination")
        entry = gr.Textbox(label="Entrée de la base à compléter (id ; vide : nouvelle entrée)", elem_id="dsr-entry")
    with gr.Row():
        approve = gr.Button("Approuver", variant="primary", elem_id="dsr-approve")
        reject = gr.Button("Rejeter", variant="stop", elem_id="dsr-reject")
    message = gr.Markdown(elem_id="dsr-message")
    form = [staff, found, number, question, reference, category, destination, entry]
    refresh.click(cb.refresh, staff, [found, table, message], api_name=False)
    opened = [question, context, reference, category, message]
    open_button.click(cb.open, [staff, found, number], opened, api_name=False)
    table.select(row_number, None, number, api_name=False).then(cb.open, [staff, found, number], opened,
                                                                 api_name=False)  # fmt: skip
    decided = [found, table, message, question, context, reference, entry]
    approve.click(lambda *a: cb.decide(*a, approve=True), form, decided, api_name=False)
    reject.click(lambda *a: cb.decide(*a, approve=False), form, decided, api_name=False)
    return {"queue": table, "approve": approve, "reject": reject, "review_message": message}


def _build_section(cb: DatasetsCallbacks, staff: gr.State) -> dict[str, gr.Component]:
    gr.Markdown("Le jeu SFT est construit à partir de la **version publiée** de la base de connaissances, des "
                "tickets résolus et des revues approuvées pour l'entraînement. Il sert à l'onglet 🧪 Entraînement.")  # fmt: skip
    build = gr.Button("Construire le jeu de données", variant="primary", elem_id="dsb-build")
    summary = gr.Markdown(elem_id="dsb-summary")
    chart = gr.Plot(show_label=False, elem_id="dsb-chart")
    preview = gr.Dataframe(headers=PREVIEW_COLUMNS, interactive=False, wrap=True, label="Aperçu des exemples",
                           column_widths=["11%", "19%", "11%", "27%", "32%"], elem_id="dsb-preview")  # fmt: skip

    def run(principal, progress=gr.Progress()):  # noqa: B008 (Gradio injects it)
        return cb.build(principal, progress)

    build.click(run, staff, [summary, chart, preview], api_name=False)
    return {"build": build, "summary": summary, "chart": chart, "preview": preview}
