"""Evaluation tab (trainers, evaluators, admins): compare candidates, read answers side by side, promote or roll back.

Callbacks are thin: the role check, then `training.eval_runner.EvaluationRunner` (the comparison
runs in a separate process) and `rag.llm.selection.ChatModelService` (promotion, rollback).
Only admins change the live chat's model (promote, accept a proposal, roll back); trainers and
evaluators propose a candidate, which admins see here. HTTP endpoints are picked by name from the
admins' allow-list. Every callback re-checks the role on the server.
"""

from __future__ import annotations

import html

import gradio as gr

from rag.llm.selection import SelectionError, describe
from tickets.users import AccessDenied, StaffPrincipal, require
from training.config import ConfigError
from training.eval_runner import SETS, EvalProgress, EvaluationRunner, endpoint_choices
from training.evaluate import promotion_choice
from training.runner import RunnerBusy
from ui.evaluation_format import comparison_figure, journal_frame, metrics_frame, question_choices, side_by_side
from ui.training_tab import error_message

STATE_LABELS = {"idle": "aucune évaluation lancée", "running": "🏃 en cours", "finished": "✅ terminée",
                "failed": "❌ échec", "cancelled": "⏹️ annulée"}  # fmt: skip
DEFAULT_SETS = ["validation", "datasets/eval/chat_holdout.jsonl"]
ADMIN_ONLY = ("Seul un administrateur peut changer le modèle du chat (promouvoir, accepter une proposition, revenir "
              "en arrière) : proposez plutôt le candidat.")  # fmt: skip


def runner_of(services) -> EvaluationRunner:
    """The app's evaluation runner (one per app: one evaluation at a time)."""
    if getattr(services, "evaluation", None) is None:
        services.evaluation = EvaluationRunner()
    return services.evaluation


class EvaluationCallbacks:
    """Role check + runner / chat-model calls; every method returns plain values for the components."""

    def __init__(self, services) -> None:
        self.services = services
        self.runner = runner_of(services)

    def _user(self, principal) -> StaffPrincipal:
        return require(self.services.staff.current(principal), "evaluation")

    def _admin(self, principal) -> StaffPrincipal:
        """The principal, re-read from the DB, if it may change the live chat's model (admins)."""
        user = self._user(principal)
        if not user.can("promotion"):
            raise AccessDenied(ADMIN_ONLY)
        return user

    # -- launching
    def load(self, principal, file: str):
        """Config text, its candidates (plus trained adapters) for the check boxes and its set sizes."""
        try:
            self._user(principal)
            text = self.runner.read_config(file)
            own, adapters = self.runner.candidate_names(text)
            sizes = self.runner.set_sizes(text)
        except (AccessDenied, ConfigError) as exc:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), error_message(exc)
        return text, gr.update(choices=own + adapters, value=own), *sizes, ""

    def progress_view(self, p: EvalProgress, note: str = "") -> tuple[str, str]:
        state = STATE_LABELS.get(p.state, p.state)
        lines = [note] if note else []
        lines.append(f"**Évaluation** `{p.name}` : {state}" if p.name else f"**État** : {state}")
        if p.total:
            pct = 100 * p.done / p.total
            lines.append(f'<progress value="{p.done}" max="{p.total}"></progress> {p.done}/{p.total} réponses '
                         f"({pct:.0f} %)" + (f" — candidat **{p.candidate}**" if p.candidate and p.state == "running" else ""))  # fmt: skip
        lines += [f"⚠️ {e}" for e in p.errors]
        return "\n\n".join(lines), p.log_tail

    def start(self, principal, text: str, candidates: list[str], sets: list[str], val_limit, eval_limit,
              endpoints: list[str] | None = None):  # fmt: skip
        """Launch the evaluation subprocess and stream its progress; show the results at the end."""
        try:
            self._user(principal)
            if not candidates and not endpoints:
                raise ConfigError(["cochez au moins un candidat."])
            if not sets:
                raise ConfigError(["cochez au moins un jeu de questions."])
            out = self.runner.start(text, candidates=candidates or [], sets=sets, validation_limit=int(val_limit or 0),
                                    eval_limit=int(eval_limit or 0), endpoints=endpoints or [])  # fmt: skip
        except (AccessDenied, ConfigError, RunnerBusy, ValueError) as exc:
            yield error_message(exc), gr.skip(), gr.skip()
            return
        note = f"🚀 Évaluation `{out.name}` lancée (processus séparé)."
        final = None
        for final in self.runner.stream(interval=1.5):
            yield *self.progress_view(final, note), gr.skip()
        names = [r["name"] for r in self.runner.list_results()]
        yield *self.progress_view(final, note), gr.update(choices=names, value=final.name if final.state == "finished" else None)

    def cancel(self, principal) -> str:
        try:
            self._user(principal)
        except AccessDenied as exc:
            return f"⚠️ {exc}"
        return "⏹️ Évaluation annulée." if self.runner.cancel() else "Aucune évaluation en cours."

    # -- results
    def refresh(self, principal):
        """Past evaluations, the chat's current model, the promotion journal and (admins) pending proposals."""
        try:
            user = self._user(principal)
        except AccessDenied as exc:
            return gr.skip(), f"⚠️ {exc}", gr.skip(), gr.skip()
        names = [r["name"] for r in self.runner.list_results()]
        return gr.update(choices=names), *self.chat_model_view(user)

    def show(self, principal, name: str | None):
        """Metrics table, chart, question list and promotable candidates of one evaluation."""
        empty = (None, None, gr.update(choices=[], value=None), "", gr.update(choices=[], value=None), "")
        if not name:
            return empty
        try:
            self._user(principal)
            results = self.runner.results(name)
        except (AccessDenied, ConfigError) as exc:
            return (*empty[:-1], error_message(exc))
        questions = question_choices(results)
        first = questions[0][1] if questions else None
        ok = [c["name"] for c in results["candidates"] if c["status"] == "ok"]
        failed = [f"⚠️ {c['name']} non évalué : {c['error']}" for c in results["candidates"] if c["status"] != "ok"]
        sets = ", ".join(f"{s['name']} : {s['items']}" for s in results["sets"])
        summary = [f"{results['created_at']} — questions ({sets}), {results['duration_s']} s.", *failed]
        return (metrics_frame(results), comparison_figure(results), gr.update(choices=questions, value=first),
                side_by_side(results, first) if first else "", gr.update(choices=ok, value=None), "\n\n".join(summary))  # fmt: skip

    def answers(self, principal, name: str | None, item_id: str | None) -> str:
        if not name or not item_id:
            return ""
        try:
            self._user(principal)
            return side_by_side(self.runner.results(name), item_id)
        except (AccessDenied, ConfigError) as exc:
            return f"<p>{html.escape(error_message(exc))}</p>"

    # -- chat model
    def chat_model_view(self, user: StaffPrincipal | None = None) -> tuple[str, object, object]:
        """Current model, journal and the pending proposals (listed for admins only)."""
        models = self.services.chat_models
        pending = models.proposals() if user is not None and user.can("promotion") else []
        choices = [(proposal_label(p), p["id"]) for p in pending]
        proposals = gr.update(choices=choices, value=choices[0][1] if choices else None)
        return f"**Modèle du chat** : {describe(models.current())}", journal_frame(models.journal()), proposals

    def _view_for(self, principal) -> tuple[str, object, object]:
        try:
            return self.chat_model_view(self._user(principal))
        except AccessDenied:
            return gr.skip(), gr.skip(), gr.skip()

    def promote(self, principal, name: str | None, candidate: str | None):
        """Admins promote the candidate at once; trainers and evaluators record a proposal for an admin."""
        try:
            user = self._user(principal)
            if not name or not candidate:
                raise SelectionError("choisissez une évaluation puis un candidat à promouvoir.")
            choice = promotion_choice(self.runner.results(name), candidate)
            models, note = self.services.chat_models, f"évaluation {name}"
            if not user.can("promotion"):
                models.propose(choice, by=user.username, note=note)
                return (f"📨 Proposition enregistrée : {describe(choice)}. Un administrateur doit l'accepter pour que le "
                        "chat l'utilise.", *self.chat_model_view(user))  # fmt: skip
            choice = models.promote(choice, by=user.username, note=note)
        except (AccessDenied, ConfigError, SelectionError) as exc:
            return error_message(exc), *self._view_for(principal)
        return f"✅ Promu : {describe(choice)}. Le chat l'utilise dès qu'il est chargé.", *self.chat_model_view(user)

    def rollback(self, principal):
        try:
            user = self._admin(principal)
            restored = self.services.chat_models.rollback(by=user.username)
        except (AccessDenied, SelectionError) as exc:
            return error_message(exc), *self._view_for(principal)
        return f"↩️ Retour à : {describe(restored)}.", *self.chat_model_view(user)

    def decide(self, principal, proposal_id: str | None, accept: bool):
        """Accept (promote) or reject a pending proposal: admins only."""
        try:
            user = self._admin(principal)
            if not proposal_id:
                raise SelectionError("choisissez une proposition.")
            models = self.services.chat_models
            if not accept:
                models.reject(proposal_id, by=user.username)
                return "🗑️ Proposition refusée.", *self.chat_model_view(user)
            choice = models.accept(proposal_id, by=user.username)
        except (AccessDenied, SelectionError) as exc:
            return error_message(exc), *self._view_for(principal)
        return f"✅ Proposition acceptée, promu : {describe(choice)}.", *self.chat_model_view(user)

    def accept(self, principal, proposal_id: str | None):
        return self.decide(principal, proposal_id, accept=True)

    def reject(self, principal, proposal_id: str | None):
        return self.decide(principal, proposal_id, accept=False)


def proposal_label(proposal: dict) -> str:
    """One line per pending proposal: when, who, which candidate, from which evaluation."""
    choice = proposal["choice"]
    return f"{proposal['at']} — {choice.get('label', '?')} proposé par {proposal['by']} ({proposal.get('note') or choice.get('origin', '')})"


def _launcher(runner: EvaluationRunner) -> dict:
    files = runner.config_files()
    first = "quick.yaml" if "quick.yaml" in files else (files[0] if files else None)
    text = runner.read_config(first) if first else ""
    own, adapters = runner.candidate_names(text) if text else ([], [])
    val_size, eval_size = runner.set_sizes(text) if text else (0, 0)
    with gr.Row():
        choice = gr.Dropdown(files, value=first, label="Configuration", scale=3, elem_id="eval-config-file")
        load = gr.Button("Charger", scale=1)
    with gr.Accordion("Configuration YAML (modifiable)", open=False):
        editor = gr.Code(text, language="yaml", elem_id="eval-yaml")
    candidates = gr.CheckboxGroup(own + adapters, value=own, label="Candidats (adaptateurs entraînés inclus)",
                                  elem_id="eval-candidates")  # fmt: skip
    endpoints = gr.Dropdown(endpoint_choices(), value=[], multiselect=True, elem_id="eval-endpoints",
                            label="Endpoints LLM à comparer (liste autorisée par les administrateurs)")  # fmt: skip
    with gr.Row():
        sets = gr.CheckboxGroup([(label, key) for key, label in SETS.items()], value=DEFAULT_SETS,
                                label="Jeux de questions", scale=3, elem_id="eval-sets")  # fmt: skip
        val_limit = gr.Number(val_size, label="Questions de validation (0 : toutes)", precision=0, minimum=0, scale=1)
        eval_limit = gr.Number(eval_size, label="Questions par jeu étiqueté (0 : toutes)", precision=0, minimum=0,
                               scale=1)  # fmt: skip
    with gr.Row():
        start = gr.Button("Lancer l'évaluation", variant="primary", elem_id="eval-start")
        cancel = gr.Button("Annuler", variant="stop")
    status = gr.Markdown(elem_id="eval-status")
    with gr.Accordion("Journal", open=False):
        log = gr.Textbox(lines=8, max_lines=8, autoscroll=True, interactive=False, show_label=False)
    return {"choice": choice, "load": load, "editor": editor, "candidates": candidates, "endpoints": endpoints,
            "sets": sets, "val_limit": val_limit, "eval_limit": eval_limit, "start": start, "cancel": cancel,
            "status": status, "log": log}  # fmt: skip


def _results(runner: EvaluationRunner) -> dict:
    names = [r["name"] for r in runner.list_results()]
    with gr.Row():
        result = gr.Dropdown(names, value=None, label="Résultats d'évaluation", scale=3, elem_id="eval-result")
        refresh = gr.Button("Rafraîchir", scale=1)
    summary = gr.Markdown(elem_id="eval-summary")
    table = gr.Dataframe(headers=["candidat", "chrF", "ROUGE-L", "faits", "escalade", "p50 ms", "p95 ms", "repli"],
                         label="Métriques (ensemble)", interactive=False, elem_id="eval-metrics")  # fmt: skip
    chart = gr.Plot(label="Comparaison", elem_id="eval-chart")
    question = gr.Dropdown([], label="Question (les désaccords d'abord, ≠)", elem_id="eval-question")
    answers = gr.HTML(elem_id="eval-answers")
    return {"result": result, "refresh": refresh, "summary": summary, "table": table, "chart": chart,
            "question": question, "answers": answers}  # fmt: skip


def _promotion() -> dict:
    current = gr.Markdown(elem_id="eval-current-model")
    with gr.Row():
        candidate = gr.Dropdown([], label="Candidat à promouvoir", scale=3, elem_id="eval-promote-candidate")
        promote = gr.Button("Promouvoir (administrateur) ou proposer", variant="primary", scale=1,
                            elem_id="eval-promote")  # fmt: skip
        rollback = gr.Button("Revenir au modèle précédent", scale=1, elem_id="eval-rollback")
    with gr.Row():
        proposals = gr.Dropdown([], label="Propositions en attente (administrateurs)", scale=3,
                                elem_id="eval-proposals")  # fmt: skip
        accept = gr.Button("Accepter", variant="primary", scale=1, elem_id="eval-accept")
        reject = gr.Button("Refuser", scale=1, elem_id="eval-reject")
    message = gr.Markdown(elem_id="eval-promote-message")
    journal = gr.Dataframe(label="Historique des propositions et promotions", interactive=False, elem_id="eval-journal")
    return {"current": current, "candidate": candidate, "promote": promote, "rollback": rollback,
            "proposals": proposals, "accept": accept, "reject": reject, "message": message, "journal": journal}  # fmt: skip


def create_evaluation_tab(services, staff: gr.State) -> dict[str, gr.Component]:
    """Launch a comparison, read metrics and answers side by side, promote or roll back the chat model."""
    cb = EvaluationCallbacks(services)
    gr.Markdown("Comparez des candidats (extractif, modèle de base, adaptateurs, endpoints autorisés) sur des "
                "questions mises de côté, puis proposez le meilleur ; un administrateur le promeut dans le chat — "
                "réversible à tout moment.")  # fmt: skip
    ui = _launcher(cb.runner) | _results(cb.runner) | _promotion()
    shown = [ui["table"], ui["chart"], ui["question"], ui["answers"], ui["candidate"], ui["summary"]]
    refresh_out = [ui["result"], ui["current"], ui["journal"], ui["proposals"]]
    staff.change(cb.refresh, staff, refresh_out, api_name=False)
    ui["refresh"].click(cb.refresh, staff, refresh_out, api_name=False)
    ui["load"].click(cb.load, [staff, ui["choice"]],
                     [ui["editor"], ui["candidates"], ui["val_limit"], ui["eval_limit"], ui["status"]], api_name=False)  # fmt: skip
    ui["start"].click(cb.start, [staff, ui["editor"], ui["candidates"], ui["sets"], ui["val_limit"], ui["eval_limit"],
                                 ui["endpoints"]],
                      [ui["status"], ui["log"], ui["result"]], api_name=False, concurrency_limit=1)  # fmt: skip
    ui["cancel"].click(cb.cancel, staff, ui["status"], api_name=False)
    ui["result"].change(cb.show, [staff, ui["result"]], shown, api_name=False)
    ui["question"].change(cb.answers, [staff, ui["result"], ui["question"]], ui["answers"], api_name=False)
    model_out = [ui["message"], ui["current"], ui["journal"], ui["proposals"]]
    ui["promote"].click(cb.promote, [staff, ui["result"], ui["candidate"]], model_out, api_name=False)
    ui["rollback"].click(cb.rollback, staff, model_out, api_name=False)
    ui["accept"].click(cb.accept, [staff, ui["proposals"]], model_out, api_name=False)
    ui["reject"].click(cb.reject, [staff, ui["proposals"]], model_out, api_name=False)
    return ui
