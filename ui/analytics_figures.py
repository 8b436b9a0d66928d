"""Plotly figures and KPI cards of the analytics tab, built from a `tickets.analytics.AnalyticsReport`.

No Gradio here, so the benchmark times exactly what the tab draws. Labels are French, numbers use
the French decimal comma.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import timedelta

import plotly.graph_objects as go

from tickets.analytics import AnalyticsReport
from tickets.domain import STATUS_LABELS, TicketStatus

BLUE, GREEN, RED, ORANGE, GREY = "#2563eb", "#16a34a", "#dc2626", "#f59e0b", "#94a3b8"
# KB_FACTS targets: automatic resolution > 70 %, bot answer < 3 s (judged on p95), CSAT > 85 %
# (share of 4-5 ratings among rated tickets).
TARGET_AUTO_RESOLUTION = 0.70
TARGET_LATENCY_MS = 3000.0
TARGET_CSAT_SATISFIED = 0.85


def _pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}".replace(".", ",") + " %"


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}".replace(",", " ").replace(".", ",")


def _seconds(ms: float | None) -> str:
    return "—" if ms is None else _num(ms / 1000, 2) + " s"


# A light look set by hand: assigning a named template deep-copies it per figure (~70 ms each).
_AXIS = {"gridcolor": "#e5e7eb", "zeroline": False, "linecolor": "#cbd5e1", "automargin": True}


def _layout(fig: go.Figure, title: str, *, percent: bool = False, days: bool = False) -> go.Figure:
    """Shared look of the charts; ``days`` formats a daily x axis the French way."""
    xaxis = {**_AXIS, "showgrid": False}
    if days:
        xaxis |= {"type": "date", "tickformat": "%d/%m", "hoverformat": "%d/%m/%Y"}
    yaxis = {**_AXIS, "rangemode": "tozero"} | ({"tickformat": ".0%"} if percent else {})
    fig.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 15}},
        template="none",
        paper_bgcolor="white",
        plot_bgcolor="white",
        height=320,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        separators=", ",
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.18, "x": 0},
        font={"family": "Inter, system-ui, sans-serif", "color": "#334155"},
        xaxis=xaxis,
        yaxis=yaxis,
    )
    return fig


def _target(fig: go.Figure, y: float, label: str) -> None:
    """A dotted horizontal line for a KB_FACTS target (plain shape: add_hline is slow)."""
    fig.update_layout(
        shapes=[
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": y,
                "y1": y,
                "line": {"dash": "dot", "color": GREY},
            }
        ],
        annotations=[
            {
                "xref": "paper",
                "x": 0,
                "y": y,
                "text": label,
                "showarrow": False,
                "yanchor": "bottom",
                "xanchor": "left",
                "font": {"size": 11, "color": "#64748b"},
            }
        ],
    )


def build_figures(report: AnalyticsReport) -> dict[str, go.Figure]:
    """Every chart of the tab, keyed like the gr.Plot components."""
    return {**_daily_figures(report), **_breakdown_figures(report)}


def _daily_figures(report: AnalyticsReport) -> dict[str, go.Figure]:
    """Day-by-day series: volumes, rates, bot latency, SLA."""
    conv, sla, lat = report.conversations_daily, report.sla_daily, report.latency_daily
    figs: dict[str, go.Figure] = {}
    figs["conversations"] = _layout(
        go.Figure(
            [
                go.Bar(
                    x=conv["day"],
                    y=conv["conversations"] - conv["escalated"],
                    name="Traitées par le bot",
                    marker_color=BLUE,
                ),
                go.Bar(x=conv["day"], y=conv["escalated"], name="Escaladées", marker_color=ORANGE),
            ]
        ).update_layout(barmode="stack"),
        "Conversations par jour",
        days=True,
    )
    rates = go.Figure(
        [
            go.Scatter(
                x=conv["day"], y=conv["auto_resolution_rate"], name="Résolution automatique", line={"color": GREEN}
            ),
            go.Scatter(x=conv["day"], y=conv["escalation_rate"], name="Taux d'escalade", line={"color": ORANGE}),
        ]
    )
    _target(rates, TARGET_AUTO_RESOLUTION, "objectif 70 %")
    figs["rates"] = _layout(rates, "Résolution automatique et escalade", percent=True, days=True)
    latency = go.Figure(
        [
            go.Scatter(x=lat["day"], y=lat["p50_ms"] / 1000, name="p50", line={"color": BLUE}),
            go.Scatter(x=lat["day"], y=lat["p95_ms"] / 1000, name="p95", line={"color": RED}),
        ]
    )
    _target(latency, TARGET_LATENCY_MS / 1000, "objectif 3 s")
    figs["latency"] = _layout(latency, "Temps de réponse du bot (s)", days=True)
    sla_fig = go.Figure(
        [
            go.Scatter(
                x=sla["day"],
                y=sla["met_rate"],
                name="SLA respecté",
                line={"color": GREEN},
                mode="lines+markers",
                connectgaps=True,
            )
        ]
    )
    figs["sla"] = _layout(sla_fig, "SLA respecté (tickets créés ce jour)", percent=True, days=True)
    return figs


def _breakdown_figures(report: AnalyticsReport) -> dict[str, go.Figure]:
    """Distributions: intents, ticket statuses, hourly activity, CSAT, complaints per day."""
    figs: dict[str, go.Figure] = {}
    figs["intents"] = _layout(
        go.Figure(
            [
                go.Bar(
                    x=report.intents["count"],
                    y=report.intents["intent"],
                    orientation="h",
                    marker_color=BLUE,
                )
            ]
        ).update_yaxes(autorange="reversed"),
        "Intentions détectées (réponses du bot)",
    )
    status = report.ticket_status
    figs["status"] = _layout(
        go.Figure(
            [
                go.Bar(
                    x=[STATUS_LABELS[TicketStatus(s)] for s in status["status"]],
                    y=status["count"],
                    marker_color=[ORANGE, BLUE, GREEN, GREY],
                )
            ]
        ),
        "Tickets par statut",
    )
    figs["hourly"] = _layout(
        go.Figure([go.Bar(x=report.hourly["hour"], y=report.hourly["messages"], marker_color=BLUE)]),
        "Messages clients par heure (UTC)",
    )
    figs["hourly"].update_xaxes(dtick=2, ticksuffix=" h")
    figs["csat"] = _layout(
        go.Figure(
            [
                go.Bar(
                    x=[f"{s} ★" for s in report.csat["score"]],
                    y=report.csat["count"],
                    marker_color=[RED, ORANGE, GREY, "#4ade80", GREEN],
                )
            ]
        ),
        "Satisfaction (CSAT) des tickets notés",
    )
    figs["complaints"] = _layout(
        go.Figure(
            [
                go.Bar(
                    x=report.complaints_daily["day"],
                    y=report.complaints_daily["complaints"],
                    marker_color=RED,
                )
            ]
        ),
        "Réclamations Mastodon par jour",
        days=True,
    )
    return figs


@dataclass(frozen=True)
class Card:
    """One KPI card: value, delta text, whether the change is good, and the target line."""

    title: str
    value: str
    delta: str
    good: bool | None
    note: str = ""
    target_ok: bool | None = None


def _delta(
    now: float | None, before: float | None, kind: str, higher_is_better: bool | None
) -> tuple[str, bool | None]:
    """'▲ +3,2 pts' style text and whether the move is good (None: no comparison)."""
    if now is None or before is None:
        return "— pas de période de comparaison", None
    diff = now - before
    if abs(diff) < 1e-12:
        return "= stable", None
    arrow = "▲" if diff > 0 else "▼"
    if kind == "rate":
        text = f"{diff * 100:+.1f} pts".replace(".", ",")
    elif kind == "ms":
        text = f"{diff / 1000:+.2f} s".replace(".", ",")
    elif kind == "score":
        text = f"{diff:+.2f}".replace(".", ",")
    else:
        text = f"{diff:+,.0f}".replace(",", " ") + (f" ({diff / before * 100:+.0f} %)" if before else "")
    return f"{arrow} {text}", None if higher_is_better is None else (diff > 0) == higher_is_better


def kpi_cards(report: AnalyticsReport) -> list[Card]:
    """The KPI cards, with deltas vs the previous period and the KB_FACTS targets."""
    k, p = report.kpis, report.previous

    def card(title, value, attr, kind, higher, note="", target_ok=None) -> Card:
        text, good = _delta(getattr(k, attr), getattr(p, attr), kind, higher)
        return Card(title, value, text, good, note, target_ok)

    def meets(value, target, above=True):
        return None if value is None else (value > target if above else value < target)

    return [
        card("Conversations", _num(k.conversations), "conversations", "count", None),
        card(
            "Résolution automatique",
            _pct(k.auto_resolution_rate),
            "auto_resolution_rate",
            "rate",
            True,
            "objectif > 70 % · sans escalade ni avis négatif",
            meets(k.auto_resolution_rate, TARGET_AUTO_RESOLUTION),
        ),
        card(
            "Taux d'escalade",
            _pct(k.escalation_rate),
            "escalation_rate",
            "rate",
            False,
            "conversations ayant donné un ticket",
        ),
        card(
            "Réponse du bot (p95)",
            _seconds(k.latency_p95_ms),
            "latency_p95_ms",
            "ms",
            False,
            f"p50 {_seconds(k.latency_p50_ms)} · objectif < 3 s",
            meets(k.latency_p95_ms, TARGET_LATENCY_MS, False),
        ),
        card(
            "CSAT (notes 4-5)",
            _pct(k.csat_satisfied),
            "csat_satisfied",
            "rate",
            True,
            f"moyenne {_num(k.csat_avg, 2)}/5 sur {_num(k.csat_count)} avis · objectif > 85 %",
            meets(k.csat_satisfied, TARGET_CSAT_SATISFIED),
        ),
        card(
            "SLA respecté",
            _pct(k.sla_met_rate),
            "sla_met_rate",
            "rate",
            True,
            "tickets résolus à temps ; ouverts en retard comptés manqués",
        ),
        card("Tickets créés", _num(k.tickets), "tickets", "count", False),
        card("Réclamations Mastodon", _num(k.complaints), "complaints", "count", False),
    ]


def _text(value: str) -> str:
    """HTML-escaped, with a non-breaking space before % so it never wraps alone."""
    return html.escape(value).replace(" %", "&nbsp;%")


def kpi_cards_html(report: AnalyticsReport) -> str:
    """The KPI cards as HTML (styled by the tab's CSS)."""
    parts = []
    for c in kpi_cards(report):
        tone = "" if c.good is None else (" good" if c.good else " bad")
        badge = (
            ""
            if c.target_ok is None
            else (
                '<span class="kpi-badge ok">✔ objectif</span>'
                if c.target_ok
                else '<span class="kpi-badge ko">✘ objectif</span>'
            )
        )
        parts.append(
            f'<div class="kpi-card"><div class="kpi-title">{_text(c.title)}{badge}</div>'
            f'<div class="kpi-value">{_text(c.value)}</div>'
            f'<div class="kpi-delta{tone}">{_text(c.delta)}</div>'
            f'<div class="kpi-note">{_text(c.note)}</div></div>'
        )
    period = report.period
    days = (period.end - period.start).days
    last = period.end - timedelta(microseconds=1)
    caption = (
        f"Du {period.start:%d/%m/%Y} au {last:%d/%m/%Y} inclus, comparé aux {days} jours précédents. "
        "Jours et heures en UTC."
    )
    return f'<div class="kpi-grid">{"".join(parts)}</div><p class="kpi-caption">{html.escape(caption)}</p>'
