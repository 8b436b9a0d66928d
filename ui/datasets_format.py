"""Tables, summary and chart of the datasets tab (pure functions, no Gradio)."""

from __future__ import annotations

import json
from datetime import datetime
from itertools import zip_longest
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from training.review import SOURCE_LABELS

QUEUE_COLUMNS = ["N°", "Source", "Catégorie", "Question", "Réponse du bot", "Date"]
PREVIEW_COLUMNS = ["Jeu", "Source", "Catégorie", "Question", "Réponse attendue"]
SOURCE_NAMES = {"kb": "base publiée", "tickets": "tickets résolus", "review": "revues approuvées"}
REDACTION_NAMES = {"phone": "téléphones", "email": "e-mails", "iban": "IBAN", "handle": "comptes Mastodon",
                   "name": "noms"}  # fmt: skip
SPLIT_NAMES = {"train": "entraînement", "validation": "validation"}
COLORS = {"train": "#2563eb", "validation": "#f59e0b"}


def _short(text: str, limit: int = 140) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def queue_table(candidates: list[dict]) -> list[list]:
    """Rows of the review queue."""
    return [[n, SOURCE_LABELS.get(c["source"], c["source"]), c["category"], _short(c["question"]),
             _short(c["bot_answer"]), datetime.fromisoformat(c["at"]).strftime("%d/%m/%Y %H:%M")]
            for n, c in enumerate(candidates, start=1)]  # fmt: skip


def _when(iso: str) -> str:
    """'2026-12-02T09:05:00Z' -> '02/12/2026 à 09:05'."""
    day, _, time = iso.rstrip("Z").partition("T")
    return f"{'/'.join(reversed(day.split('-')))} à {time[:5]}"


def _n(value: int) -> str:
    return f"{value:,}".replace(",", " ")


def summary_markdown(stats: dict) -> str:
    """Split sizes, groups, removed duplicates and the redaction report."""
    ex, groups = stats["examples"], stats["groups"]
    redaction = stats.get("redaction", {"texts": 0, "by_kind": {}})
    masked = ", ".join(f"{_n(v)} {REDACTION_NAMES.get(k, k)}" for k, v in redaction["by_kind"].items()) or "rien"
    reviews = sum(stats.get("per_source", {}).get(s, {}).get("review", 0) for s in ("train", "validation"))
    return "\n".join([
        f"**Jeu construit** le {_when(stats['built_at'])} UTC en {stats['seconds']:.1f} s.".replace(".", ",", 1),
        "",
        f"- **Entraînement** : {_n(ex['train'])} exemples ({_n(groups['train'])} sources)",
        f"- **Validation** : {_n(ex['validation'])} exemples ({_n(groups['validation'])} sources)",
        f"- Doublons retirés : {_n(stats['duplicates_removed'])} ; questions présentes dans les deux jeux retirées "
        f"de la validation : {_n(stats['cross_split_questions_removed'])}",
        f"- Exemples issus de revues approuvées : {_n(reviews)}",
        f"- **Anonymisation** : {_n(redaction['texts'])} texte(s) modifié(s) — masqués : {masked}",
    ])  # fmt: skip


def counts_figure(stats: dict) -> go.Figure:
    """Examples per category and per source, train and validation stacked."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.68, 0.32], subplot_titles=("Par catégorie", "Par source"))
    for split in ("train", "validation"):
        cats = stats["per_category"].get(split, {})
        sources = stats.get("per_source", {}).get(split, {})
        name, color = SPLIT_NAMES[split], COLORS[split]
        fig.add_bar(x=list(cats), y=list(cats.values()), name=name, marker_color=color, legendgroup=split, row=1, col=1)
        fig.add_bar(x=[SOURCE_NAMES.get(s, s) for s in sources], y=list(sources.values()), name=name,
                    text=list(sources.values()), textposition="auto", marker_color=color, legendgroup=split,
                    showlegend=False, row=1, col=2)  # fmt: skip
    fig.update_layout(barmode="stack", template="none", height=360, paper_bgcolor="white", plot_bgcolor="white",
                      margin={"l": 50, "r": 20, "t": 50, "b": 60}, legend={"orientation": "h", "y": -0.25},
                      separators=", ", font={"family": "Inter, system-ui, sans-serif", "color": "#334155"})  # fmt: skip
    fig.update_yaxes(gridcolor="#e5e7eb", rangemode="tozero")
    return fig


def preview_rows(out_dir: Path, per_split: int = 6) -> list[list]:
    """A few examples of each split, taken in turn from each kind of source (FAQ, procedure, ticket, review…)."""
    rows = []
    for split in ("train", "validation"):
        path = out_dir / f"{split}.jsonl"
        if not path.exists():
            continue
        by_kind: dict[str, list[dict]] = {}
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                ex = json.loads(line)
                by_kind.setdefault(ex["kind"], []).append(ex)
        picked = [ex for group in zip_longest(*by_kind.values()) for ex in group if ex is not None][:per_split]
        rows += [[SPLIT_NAMES[split], ex["source"], ex["category"], _short(ex["messages"][1]["content"]),
                  _short(ex["messages"][2]["content"], 220)] for ex in picked]  # fmt: skip
    return rows
