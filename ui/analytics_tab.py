"""Analytics tab (agents, trainers, admins): KPI cards with deltas, Plotly charts and CSV exports."""

from __future__ import annotations

from datetime import timedelta

import gradio as gr

from storage.models import utcnow
from tickets.analytics import AnalyticsService, period_from_dates
from tickets.users import AccessDenied, require
from ui.analytics_figures import build_figures, kpi_cards_html

DEFAULT_DAYS = 30
# Charts in display order, two per row; the last one shares its row with the exports.
CHARTS = ("conversations", "rates", "latency", "sla", "intents", "status", "hourly", "csat", "complaints")
EXPORT_LABELS = {
    "conversations": "Conversations",
    "messages": "Messages (texte anonymisé)",
    "tickets": "Tickets (résumés anonymisés)",
    "feedback": "Avis 👍/👎",
    "mastodon_posts": "Publications Mastodon",
}
KPI_CSS = """
.kpi-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 12px; }
.kpi-card { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 12px 14px;
            background: var(--background-fill-secondary); }
.kpi-title { font-size: 0.85em; color: var(--body-text-color-subdued); display: flex;
             justify-content: space-between; gap: 6px; }
.kpi-value { font-size: 1.7em; font-weight: 650; margin: 2px 0; }
.kpi-delta { font-size: 0.9em; color: var(--body-text-color-subdued); }
.kpi-delta.good { color: #16a34a; } .kpi-delta.bad { color: #dc2626; }
.kpi-note { font-size: 0.78em; color: var(--body-text-color-subdued); margin-top: 4px; }
.kpi-badge { font-size: 0.85em; white-space: nowrap; } .kpi-badge.ok { color: #16a34a; }
.kpi-badge.ko { color: #dc2626; }
.kpi-caption { font-size: 0.8em; color: var(--body-text-color-subdued); margin: 8px 0 0; }
"""


class AnalyticsCallbacks:
    """Thin callbacks: role check, then AnalyticsService and the figure builders."""

    def __init__(self, services) -> None:
        self.services = services
        self.analytics = getattr(services, "analytics", None) or AnalyticsService(services.db)

    def _allowed(self, principal) -> None:
        require(self.services.staff.current(principal), "analytics")

    def refresh(self, principal, start, end):
        """KPI cards, message and every chart for the chosen dates (blank when logged out)."""
        blank = ("", "", *[None] * len(CHARTS))
        if principal is None:
            return blank
        try:
            self._allowed(principal)
            period = period_from_dates(start, end)
        except (AccessDenied, ValueError) as exc:
            return ("", f"⚠️ {exc}", *[None] * len(CHARTS))
        report = self.analytics.report(period.start, period.end)
        figures = build_figures(report)
        return (kpi_cards_html(report), "", *[figures[name] for name in CHARTS])

    def export(self, principal, table: str, start, end):
        """CSV of one table over the dates, personal data removed; no copy of it is left behind.

        A generator: Gradio copies the yielded file into its cache (cleaned by ``delete_cache``)
        before resuming it, and resuming removes the private folder the CSV was written in.
        """
        try:
            self._allowed(principal)
            period = period_from_dates(start, end)
            with self.analytics.exported_csv(table, period.start, period.end) as path:
                yield gr.update(value=str(path)), ""
        except (AccessDenied, ValueError) as exc:
            yield gr.update(value=None), f"⚠️ {exc}"


def _default_start() -> str:
    return str((utcnow() - timedelta(days=DEFAULT_DAYS - 1)).date())


def _default_end() -> str:
    return str(utcnow().date())


def create_analytics_tab(services, staff: gr.State) -> dict[str, gr.Component]:
    """Date range, KPI cards, charts and exports; refreshed at login and on demand."""
    cb = AnalyticsCallbacks(services)
    gr.Markdown("### Tableau de bord\nIndicateurs du service client sur la période choisie (bornes incluses).")
    with gr.Row(equal_height=True):
        start = gr.DateTime(_default_start, include_time=False, type="string", label="Du", elem_id="analytics-start")
        end = gr.DateTime(_default_end, include_time=False, type="string", label="Au", elem_id="analytics-end")
        refresh = gr.Button("🔄 Actualiser", variant="primary", elem_id="analytics-refresh", scale=0, min_width=160)
    message = gr.Markdown(elem_id="analytics-message")
    cards = gr.HTML(css_template=KPI_CSS, elem_id="analytics-kpis", js_on_load=None)
    plots = {}
    for i in range(0, len(CHARTS) - 1, 2):
        with gr.Row():
            for name in CHARTS[i : i + 2]:
                plots[name] = gr.Plot(show_label=False, elem_id=f"analytics-{name}")
    with gr.Row():
        plots[CHARTS[-1]] = gr.Plot(show_label=False, elem_id=f"analytics-{CHARTS[-1]}")
        exports = _export_box()
    outputs = [cards, message, *plots.values()]
    inputs = [staff, start, end]
    refresh.click(cb.refresh, inputs, outputs, api_name=False)
    staff.change(cb.refresh, inputs, outputs, api_name=False)
    exports["button"].click(
        cb.export, [staff, exports["table"], start, end], [exports["file"], message], api_name=False
    )
    return {"start": start, "end": end, "refresh": refresh, "cards": cards, "message": message, **plots, **exports}


def _export_box() -> dict[str, gr.Component]:
    """Table choice, export button and the downloadable CSV."""
    with gr.Column():
        gr.Markdown("#### Export CSV\nDonnées brutes de la période, sans nom, téléphone ni e-mail.")
        table = gr.Dropdown(
            [(label, key) for key, label in EXPORT_LABELS.items()],
            value="conversations",
            label="Table",
            elem_id="analytics-export-table",
        )
        button = gr.Button("⬇️ Exporter en CSV", elem_id="analytics-export")
        file = gr.File(label="Fichier CSV", interactive=False, elem_id="analytics-export-file")
    return {"table": table, "button": button, "file": file}
