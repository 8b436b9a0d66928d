"""Gradio user interface: `build_app(services)` assembles one module per tab."""

from __future__ import annotations

import gradio as gr

from ui.analytics_tab import create_analytics_tab
from ui.chat_tab import create_chat_tab
from ui.datasets_tab import create_datasets_tab
from ui.evaluation_tab import create_evaluation_tab
from ui.kb_tab import create_kb_tab
from ui.social_tab import create_social_tab
from ui.staff_tab import create_staff_tab
from ui.tickets_tab import create_tickets_tab
from ui.training_tab import create_training_tab

CACHE_CLEANUP = (3600, 3600)  # (every N seconds, delete cached files older than M seconds)
# Gradio's queue loops poll for work every 1 ms (events) and 10 ms (progress) even with no client:
# ~4 % of a core on an idle server here. 50 ms / 200 ms cost ~0.5 % (an event waits at most 50 ms
# more to start; progress bars refresh 5 times a second).
QUEUE_POLL_S, PROGRESS_POLL_S = 0.05, 0.2
# Staff tabs: (label, area used for the role check, builder(services, staff_state) -> dict).
# Each stays hidden until a user whose role may use that area logs in; callbacks re-check.
STAFF_TABS: list[tuple[str, str, object]] = [
    ("🎫 Tickets", "tickets", create_tickets_tab),
    ("📣 Réseaux sociaux", "social", create_social_tab),
    ("📊 Analytique", "analytics", create_analytics_tab),
    ("📚 Base de connaissances", "knowledge", create_kb_tab),
    ("🗂️ Jeux de données", "datasets", create_datasets_tab),
    ("🧪 Entraînement", "training", create_training_tab),
    ("📏 Évaluation", "evaluation", create_evaluation_tab),
]


def build_app(services) -> gr.Blocks:
    """The whole MobiliaChat Blocks app."""
    # Files Gradio copies into its cache to serve (CSV exports) are removed after an hour, and at shutdown.
    # analytics_enabled=False: no usage telemetry or version check sent to Gradio / Hugging Face servers.
    with gr.Blocks(title="MobiliaChat — Assistance Free Mobile", delete_cache=CACHE_CLEANUP,
                   analytics_enabled=False) as app:
        gr.Markdown("# MobiliaChat\nL'assistant du service client Free Mobile, disponible 24 h/24.")
        staff = gr.State(None)
        with gr.Tabs():
            with gr.Tab("💬 Assistance", id="chat"):
                create_chat_tab(services)
            staff_tab = gr.Tab("🔐 Espace conseillers", id="staff")
            areas = []
            for label, area, builder in STAFF_TABS:
                with gr.Tab(label, id=area, visible=False) as tab:
                    builder(services, staff)
                areas.append((area, tab))
            with staff_tab:
                create_staff_tab(services, staff, areas)
    return app


def quiet_queue(app: gr.Blocks, **queue_options) -> gr.Blocks:
    """Enable the app's queue (``Blocks.queue`` options) with idle polling slowed to QUEUE_POLL_S / PROGRESS_POLL_S."""
    app.queue(**queue_options)
    queue = getattr(app, "_queue", None)
    if queue is not None and hasattr(queue, "sleep_when_free"):  # Gradio internals: left alone if they change
        queue.sleep_when_free = max(queue.sleep_when_free, QUEUE_POLL_S)
        queue.progress_update_sleep_when_free = max(queue.progress_update_sleep_when_free, PROGRESS_POLL_S)
    return app
