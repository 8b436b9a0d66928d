"""KB editor (trainers, admins): search entries, edit answer and phrasings, create/retire, history and restore."""

from __future__ import annotations

import gradio as gr

from rag.kb import KbError
from tickets.users import AccessDenied, require
from ui.kb_format import entries_table, history_table

COLUMNS = ["Id", "Titre", "Catégorie", "Statut", "Formulations", "Auteur"]
STATUS_CHOICES = [("Tous", ""), ("Brouillons", "draft"), ("Publiées", "published"), ("Retirées", "retired")]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _row_id(evt: gr.SelectData):
    """The entry id (first column) of a clicked row."""
    return evt.row_value[0] if evt.row_value else gr.update()


def _bind(act, action: str):
    """The callback of one button (Gradio passes the inputs positionally)."""
    return lambda principal, eid, ttl, cat, ans, phr, lnk, rev: act(principal, eid, ttl, cat, ans, phr, lnk, rev, action)


def create_kb_editor(services, staff: gr.State) -> dict[str, gr.Component]:
    """Search box, entry list, entry form and history; every callback re-checks the role."""
    kb = services.kb
    with gr.Row():
        query = gr.Textbox(label="Rechercher", scale=3, elem_id="kbe-query")
        status = gr.Dropdown(STATUS_CHOICES, value="", label="Statut", scale=1, elem_id="kbe-status")
        find = gr.Button("Rechercher", elem_id="kbe-find", scale=1)
    table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True, max_height=360, elem_id="kbe-table",
                         column_widths=["22%", "35%", "11%", "9%", "13%", "10%"])  # fmt: skip
    with gr.Row(equal_height=True):
        entry_id = gr.Textbox(label="Id de l'entrée (vide : nouvelle)", scale=2, elem_id="kbe-id")
        load = gr.Button("Ouvrir", scale=1, elem_id="kbe-open")
        title = gr.Textbox(label="Titre", scale=3, elem_id="kbe-title")
        category = gr.Textbox(label="Catégorie", scale=2, elem_id="kbe-category")
    answer = gr.Textbox(label="Réponse", lines=5, elem_id="kbe-answer")
    with gr.Row():
        phrasings = gr.Textbox(label="Formulations (une par ligne)", lines=5, elem_id="kbe-phrasings")
        links = gr.Textbox(label="Liens (un par ligne)", lines=5, elem_id="kbe-links")
    with gr.Row():
        save = gr.Button("Enregistrer (brouillon)", variant="primary", elem_id="kbe-save")
        retire = gr.Button("Retirer l'entrée", variant="stop", elem_id="kbe-retire")
    message = gr.Markdown(elem_id="kbe-message")
    history = gr.Dataframe(headers=["Révision", "Action", "Auteur", "Date", "Note"], interactive=False,
                           label="Historique de l'entrée", elem_id="kbe-history")  # fmt: skip
    diff = gr.Textbox(label="Différences (dernière révision)", lines=8, max_lines=24, interactive=False,
                      elem_id="kbe-diff")  # fmt: skip
    with gr.Row():
        revision = gr.Number(label="Révision à restaurer (par défaut : l'avant-dernière)", precision=0,
                             elem_id="kbe-revision")  # fmt: skip
        restore = gr.Button("Restaurer cette révision", elem_id="kbe-restore")
    form = [entry_id, title, category, answer, phrasings, links]

    def who(principal):
        return require(services.staff.current(principal), "knowledge")

    def search(principal, text, state):
        try:
            who(principal)
        except AccessDenied as exc:
            return gr.update(), f"⚠️ {exc}"
        return entries_table(kb.search(text, status=state)), ""

    def open_entry(principal, eid):
        try:
            who(principal)
            row = kb._get(eid.strip())
        except (AccessDenied, KbError) as exc:
            return *[gr.update()] * 6, f"⚠️ {exc}", gr.update(), gr.update(), gr.update()
        hist = kb.history(row.id)
        return (row.id, row.title, row.category, row.answer, "\n".join(row.questions), "\n".join(row.links), "",
                history_table(hist), hist[0]["diff"] if hist else "", hist[1]["id"] if len(hist) > 1 else None)  # fmt: skip

    def act(principal, eid, ttl, cat, ans, phr, lnk, rev, action):
        try:
            user = who(principal)
            if action == "save":
                kb.save_entry({"id": eid.strip() or None, "title": ttl, "category": cat.strip() or None, "answer": ans,
                               "questions": _lines(phr), "links": _lines(lnk)}, author=user.username, role=user.role)  # fmt: skip
                done = "✅ Brouillon enregistré : publiez-le depuis « Publication »."
            elif action == "retire":
                kb.retire(eid.strip(), author=user.username, role=user.role)
                done = "✅ Entrée retirée (effectif à la prochaine publication)."
            else:
                kb.restore(int(rev or 0), author=user.username, role=user.role)
                done = f"✅ Révision {int(rev or 0)} restaurée en brouillon."
        except (AccessDenied, KbError) as exc:
            return f"⚠️ {exc}"
        return done

    find.click(search, [staff, query, status], [table, message], api_name=False)
    staff.change(lambda p: search(p, "", "")[0] if p else gr.update(), staff, table, api_name=False)
    opened = [*form, message, history, diff, revision]
    load.click(open_entry, [staff, entry_id], opened, api_name=False)
    table.select(_row_id, None, entry_id, api_name=False).then(open_entry, [staff, entry_id], opened, api_name=False)
    for button, action in ((save, "save"), (retire, "retire"), (restore, "restore")):
        button.click(_bind(act, action), [staff, *form, revision], message, api_name=False)
    return {"table": table, "save": save, "message": message}
