"""Knowledge gaps: questions the assistant handled badly, grouped; add as phrasing, draft an entry, dismiss."""

from __future__ import annotations

import gradio as gr

from rag.gaps import GapFinder, report
from rag.kb import KbError
from tickets.users import AccessDenied, require
from ui.kb_format import gaps_table

COLUMNS = ["N°", "Question", "Nombre", "Période", "Raisons", "Entrée choisie", "Commentaires"]


def _row_number(evt: gr.SelectData):
    """The N° (first column) of a clicked row."""
    return int(evt.row_value[0]) if evt.row_value else gr.update()


def create_kb_gaps(services, staff: gr.State) -> dict[str, gr.Component]:
    """Gaps table and the three actions on one group (by its number)."""
    finder = GapFinder(services.db, min_confidence=services.settings.rag.min_confidence)
    groups = gr.State([])
    refresh = gr.Button("Actualiser les lacunes", elem_id="kbg-refresh")
    table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True, max_height=480, elem_id="kbg-table",
                         column_widths=["5%", "27%", "7%", "15%", "12%", "14%", "20%"])  # fmt: skip
    with gr.Row():
        number = gr.Number(label="N° du groupe", value=1, precision=0, elem_id="kbg-number")
        target = gr.Textbox(label="Entrée à compléter (id)", elem_id="kbg-entry")
    with gr.Row():
        add = gr.Button("Ajouter comme formulation", variant="primary", elem_id="kbg-add")
        draft = gr.Button("Créer un brouillon d'entrée", elem_id="kbg-draft")
        dismiss = gr.Button("Ignorer", elem_id="kbg-dismiss")
    message = gr.Markdown(elem_id="kbg-message")

    def load(principal):
        try:
            require(services.staff.current(principal), "knowledge")
        except AccessDenied as exc:
            return [], gr.update(), f"⚠️ {exc}"
        found = report(finder.groups())
        return found, gaps_table(found), f"{len(found)} groupe(s) de questions à traiter."

    def act(principal, found, n, entry_id, action):
        try:
            user = require(services.staff.current(principal), "knowledge")
            if not found or not 1 <= int(n or 0) <= len(found):
                raise KbError("choisissez un numéro de groupe de la liste.")
            group = found[int(n) - 1]
            if action == "add":
                services.kb.add_phrasing(entry_id.strip(), group["question"], author=user.username, role=user.role)
                return f"✅ « {group['question']} » ajoutée aux formulations de {entry_id.strip()} (brouillon)."
            if action == "draft":
                services.kb.save_entry({"questions": [group["question"]], "answer": "À compléter.",
                                        "category": "général"}, author=user.username, role=user.role)  # fmt: skip
                return "✅ Brouillon créé : complétez sa réponse dans l'éditeur."
            finder.dismiss(group["message_ids"])
            return "✅ Groupe ignoré."
        except (AccessDenied, KbError) as exc:
            return f"⚠️ {exc}"

    refresh.click(load, staff, [groups, table, message], api_name=False)
    table.select(_row_number, None, number, api_name=False)
    for button, action in ((add, "add"), (draft, "draft"), (dismiss, "dismiss")):
        button.click(lambda p, f, n, e, _a=action: act(p, f, n, e, _a), [staff, groups, number, target], message,
                     api_name=False)  # fmt: skip
    return {"refresh": refresh, "table": table, "message": message}
