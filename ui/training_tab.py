"""Training tab (trainers, admins): edit a run config, launch/cancel a fine-tuning subprocess, follow it live.

Callbacks are thin: the role check, then `training.runner.TrainingRunner` (the run lives in a
separate process; this tab only reads the files it writes). A trainer proposes an adapter for the
chat; only an admin promotes it (here, or by accepting the proposal in the evaluation tab).
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from rag.llm.selection import SelectionError, describe
from tickets.users import AccessDenied, require
from training.config import ConfigError
from training.runner import RunnerBusy, RunProgress, TrainingRunner

STATE_LABELS = {
    "idle": "aucun entraînement lancé", "starting": "⏳ démarrage", "running": "🏃 en cours",
    "finished": "✅ terminé", "failed": "❌ échec", "cancelled": "⏹️ annulé", "interrupted": "⚠️ interrompu",
}  # fmt: skip
DEFAULT_CONFIG = "smollm2-lora-cpu.yaml"  # the one that runs on a CPU
RUN_COLUMNS = ["run", "state", "steps", "initial_eval_loss", "eval_loss", "train_loss", "runtime_s", "adapter"]


def runner_of(services) -> TrainingRunner:
    """The app's runner (built once in services)."""
    if getattr(services, "training", None) is None:
        services.training = TrainingRunner()
    return services.training


def error_message(exc: Exception) -> str:
    """French Markdown for a refused action: every config error on its own line."""
    if isinstance(exc, ConfigError):
        return "⚠️ Configuration invalide :\n" + "\n".join(f"- {e}" for e in exc.errors)
    return f"⚠️ {exc}"


class TrainingCallbacks:
    """Role check + runner calls; every method returns plain values for the components."""

    def __init__(self, services) -> None:
        self.services = services
        self.runner = runner_of(services)

    def _allowed(self, principal) -> None:
        require(self.services.staff.current(principal), "training")

    def runs_table(self) -> pd.DataFrame:
        return pd.DataFrame(self.runner.list_runs(), columns=RUN_COLUMNS).round(3)

    def view(self, p: RunProgress, note: str = "") -> tuple:
        state = STATE_LABELS.get(p.state, p.state)
        head = f"**Run** `{p.run}` : {state}" if p.run else f"**État** : {state}"
        if p.metrics:
            m = p.metrics
            head += f" — perte validation {m.get('initial_eval_loss') or float('nan'):.3f} → {m.get('eval_loss') or float('nan'):.3f}"
        if p.error:
            head += f"\n\n❌ {p.error}"
        plot = pd.DataFrame(p.losses, columns=["step", "loss", "split"])
        return "\n\n".join(x for x in (note, head) if x), p.log_tail, plot, self.runs_table()

    def refresh(self, principal):
        try:
            self._allowed(principal)
        except AccessDenied as exc:
            return f"⚠️ {exc}", "", None, None, gr.update()
        runs = [r["run"] for r in self.runner.list_runs()]
        return (*self.view(self.runner.progress()), gr.update(choices=runs))

    def load(self, principal, name: str):
        try:
            self._allowed(principal)
            return self.runner.read_config(name), ""
        except (AccessDenied, ConfigError) as exc:
            return gr.update(), error_message(exc)

    def validate(self, principal, text: str) -> str:
        try:
            self._allowed(principal)
            config = self.runner.validate(text)
        except (AccessDenied, ConfigError) as exc:
            return error_message(exc)
        where = "GPU (CUDA)" if config.needs_gpu else "CPU"
        return f"✅ Configuration valide : {config.model.name_or_path}, {config.training.max_steps} pas, {where}."

    def start(self, principal, text: str, resume_run: str | None = None):
        """Launch (or resume) a run and stream its progress until it ends."""
        try:
            self._allowed(principal)
            run_dir = self.runner.resume(resume_run) if resume_run else self.runner.start(text)
        except (AccessDenied, ConfigError, RunnerBusy) as exc:
            yield error_message(exc), gr.skip(), gr.skip(), gr.skip()
            return
        note = f"🚀 Run `{run_dir.name}` lancé (processus séparé)."
        for progress in self.runner.stream(interval=1.5):
            yield self.view(progress, note)

    def resume(self, principal, run: str | None):
        """Restart the selected run from its last checkpoint, streaming like start()."""
        if not run:
            yield "⚠️ Choisissez le run à reprendre.", gr.skip(), gr.skip(), gr.skip()
            return
        yield from self.start(principal, "", resume_run=run)

    def cancel(self, principal) -> str:
        try:
            self._allowed(principal)
        except AccessDenied as exc:
            return f"⚠️ {exc}"
        return "⏹️ Entraînement annulé." if self.runner.cancel() else "Aucun entraînement en cours."

    def use_in_chat(self, principal, run: str | None) -> str:
        """Admins promote the run's adapter as the chat's model; trainers propose it to an admin."""
        try:
            user = require(self.services.staff.current(principal), "training")
            if not run:
                raise ConfigError(["choisissez un run terminé."])
            choice = self.runner.adapter_choice(run)
            models = self.services.chat_models
            if not user.can("promotion"):  # role re-read from the DB above: only admins change the live chat
                models.propose(choice, by=user.username, note=f"entraînement {run}")
                return (f"📨 Proposition enregistrée : {describe(choice)}. Un administrateur doit l'accepter dans "
                        "l'onglet Évaluation pour que le chat l'utilise.")  # fmt: skip
            choice = models.promote(choice, by=user.username)
        except (AccessDenied, ConfigError, SelectionError) as exc:
            return error_message(exc)
        return (f"✅ Le chat répond désormais avec {describe(choice)} (mode hybride : réponse extractive en cas "
                "d'échec). Annulable depuis l'onglet Évaluation.")  # fmt: skip


def _editor(runner: TrainingRunner) -> dict:
    files = runner.config_files()
    first = DEFAULT_CONFIG if DEFAULT_CONFIG in files else (files[0] if files else None)
    with gr.Row():
        choice = gr.Dropdown(files, value=first, label="Configuration", scale=3, elem_id="training-config-file")
        load = gr.Button("Charger", scale=1)
    text = runner.read_config(first) if first else ""
    editor = gr.Code(text, language="yaml", label="Configuration YAML (modifiable)", elem_id="training-yaml")
    with gr.Row():
        validate = gr.Button("Valider")
        start = gr.Button("Lancer l'entraînement", variant="primary", elem_id="training-start")
        cancel = gr.Button("Annuler", variant="stop", elem_id="training-cancel")
    return {"choice": choice, "load": load, "editor": editor, "validate": validate, "start": start, "cancel": cancel}


def _monitor() -> dict:
    message = gr.Markdown(elem_id="training-status")
    plot = gr.LinePlot(x="step", y="loss", color="split", title="Perte (entraînement / validation)", height=280,
                       elem_id="training-loss")  # fmt: skip
    log = gr.Textbox(label="Journal (fin)", lines=12, max_lines=12, autoscroll=True, interactive=False)
    runs = gr.Dataframe(headers=RUN_COLUMNS, label="Runs", interactive=False, elem_id="training-runs")
    with gr.Row():
        run = gr.Dropdown([], label="Run", scale=3, elem_id="training-run")
        refresh = gr.Button("Rafraîchir", scale=1)
        resume = gr.Button("Reprendre ce run", scale=1)
        use = gr.Button("Utiliser dans le chat (administrateur) ou proposer", variant="primary", scale=1,
                        elem_id="training-use")  # fmt: skip
    return {"message": message, "plot": plot, "log": log, "runs": runs, "run": run, "refresh": refresh,
            "resume": resume, "use": use}  # fmt: skip


def create_training_tab(services, staff: gr.State) -> dict[str, gr.Component]:
    """Config editor, launch/cancel, live loss plot and log, past runs and chat selection."""
    cb = TrainingCallbacks(services)
    gr.Markdown("Fine-tuning LoRA / QLoRA (TRL + PEFT). L'entraînement tourne dans un processus séparé ; "
                "un seul à la fois. Construisez d'abord le jeu de données dans l'onglet 🗂️ Jeux de données "
                "(ou `python -m training.data build --published`).")  # fmt: skip
    ui = _editor(cb.runner) | _monitor()
    outputs = [ui["message"], ui["log"], ui["plot"], ui["runs"]]
    staff.change(cb.refresh, staff, [*outputs, ui["run"]], api_name=False)
    ui["refresh"].click(cb.refresh, staff, [*outputs, ui["run"]], api_name=False)
    ui["load"].click(cb.load, [staff, ui["choice"]], [ui["editor"], ui["message"]], api_name=False)
    ui["validate"].click(cb.validate, [staff, ui["editor"]], ui["message"], api_name=False)
    ui["start"].click(cb.start, [staff, ui["editor"]], outputs, api_name=False, concurrency_limit=1)
    ui["resume"].click(cb.resume, [staff, ui["run"]], outputs, api_name=False, concurrency_limit=1)
    ui["cancel"].click(cb.cancel, staff, ui["message"], api_name=False)
    ui["use"].click(cb.use_in_chat, [staff, ui["run"]], ui["message"], api_name=False)
    return ui
