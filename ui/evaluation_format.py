"""Evaluation results as tables, a Plotly chart and side-by-side answers with highlighted differences.

Pure functions (no Gradio): every answer is HTML-escaped before any markup is added.
"""

from __future__ import annotations

import difflib
import html
import re

import pandas as pd
import plotly.graph_objects as go

from training.evaluate import METRIC_LABELS

CHART_METRICS = {  # metric -> (label, factor to a 0-100 scale)
    "chrf": ("chrF", 1), "rougeL": ("ROUGE-L ×100", 100), "fact_recall": ("faits ×100", 100),
    "escalation_accuracy": ("escalade ×100", 100), "gen_chrf": ("chrF généré", 1),
}  # fmt: skip
_WORD = re.compile(r"\S+")
DIFF_CSS = (
    "<style>.eval-grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:10px}"
    ".eval-card{border:1px solid var(--border-color-primary);border-radius:8px;padding:8px 10px}"
    ".eval-card h4{margin:0 0 4px}.eval-meta{font-size:.85em;opacity:.8}"
    "ins.eval-add{background:#fff3b0;color:inherit;text-decoration:none}"
    "del.eval-miss{color:#b42318}.eval-draft{font-size:.85em;opacity:.75;margin-top:6px}</style>"
)


def _round(value):
    """Readable figures: ratios to 3 decimals, scores and milliseconds to 1."""
    if not isinstance(value, float):
        return value
    return round(value, 3) if abs(value) < 1 else round(value, 1)


def metrics_frame(results: dict, set_name: str | None = None) -> pd.DataFrame:
    """Candidates × metrics (French column labels), overall or for one set."""
    table = results["metrics"] if not set_name else results["per_set"].get(set_name, {})
    keys = [k for k in METRIC_LABELS if any(k in m for m in table.values())]
    rows = [{"candidat": name, **{METRIC_LABELS[k]: _round(m.get(k)) for k in keys}} for name, m in table.items()]
    return pd.DataFrame(rows, columns=["candidat", *(METRIC_LABELS[k] for k in keys)])


def comparison_figure(results: dict) -> go.Figure:
    """Grouped bars: quality metrics of every candidate on one 0-100 scale."""
    fig = go.Figure()
    for name, m in results["metrics"].items():
        keys = [k for k in CHART_METRICS if m.get(k) is not None]
        fig.add_bar(name=name, x=[CHART_METRICS[k][0] for k in keys], y=[m[k] * CHART_METRICS[k][1] for k in keys])
    fig.update_layout(barmode="group", height=340, margin={"l": 40, "r": 10, "t": 40, "b": 40},
                      title="Comparaison des candidats (0-100)", yaxis={"range": [0, 100]}, legend_title="candidat")  # fmt: skip
    return fig


def question_choices(results: dict) -> list[tuple[str, str]]:
    """(label, id) of every question, the ones where candidates disagree first."""

    def spread(item: dict) -> int:
        return len({" ".join(a["text"].split()) for a in item["answers"].values()})

    items = sorted(results["items"], key=lambda i: -spread(i))
    return [(f"{i['id']} — {i['question'][:70]}" + (" ≠" if spread(i) > 1 else ""), i["id"]) for i in items]


def highlight(text: str, base: str | None) -> str:
    """`text` escaped, words absent from `base` marked <ins>; `base` words it misses listed as <del>."""
    words = _WORD.findall(text)
    if not base:
        return html.escape(text)
    ref = _WORD.findall(base)
    matcher = difflib.SequenceMatcher(a=[w.lower() for w in ref], b=[w.lower() for w in words], autojunk=False)
    out, missing = [], []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        chunk = html.escape(" ".join(words[j1:j2]))
        if op == "equal":
            out.append(chunk)
        else:
            if j2 > j1:
                out.append(f'<ins class="eval-add">{chunk}</ins>')
            if i2 > i1:
                missing.append(" ".join(ref[i1:i2]))
    body = " ".join(out)
    if missing:
        shown = html.escape(" … ".join(missing)[:240])
        body += f'<div class="eval-meta">absent : <del class="eval-miss">{shown}</del></div>'
    return body


def side_by_side(results: dict, item_id: str) -> str:
    """HTML cards: the question, its reference/facts, then each candidate's answer with differences marked.

    Differences are against the reference answer when there is one, else against the first candidate.
    """
    item = next((i for i in results["items"] if i["id"] == item_id), None)
    if item is None:
        return "<p>Question introuvable.</p>"
    names = list(item["answers"])
    base = item["reference"] or (item["answers"][names[0]]["text"] if names else None)
    against = "la réponse de référence" if item["reference"] else f"« {names[0]} »" if names else ""
    head = [f"<p><b>Question</b> ({html.escape(item['set'])}) : {html.escape(item['question'])}</p>"]
    if item["reference"]:
        head.append(f"<p><b>Référence</b> : {html.escape(item['reference'])}</p>")
    if item["expected_facts"]:
        esc = "oui" if item["expect_escalation"] else "non"
        head.append(f"<p><b>Faits attendus</b> : {html.escape(', '.join(item['expected_facts']))} — escalade attendue : {esc}</p>")
    head.append(f'<p class="eval-meta">Surligné : mots absents de {html.escape(against)}.</p>')
    cards = []
    for name, a in item["answers"].items():
        meta = [f"{a['latency_ms']:.0f} ms", html.escape(a["mode_used"])]
        if a.get("chrf") is not None:
            meta.append(f"chrF {a['chrf']:.1f}")
        if item["expected_facts"]:
            meta.append(f"faits {len(a['facts_found'])}/{len(item['expected_facts'])}")
        if a.get("escalation_ok") is False:
            meta.append("⚠️ escalade erronée")
        if a.get("fallback_reason"):
            meta.append(f"repli : {html.escape(a['fallback_reason'])}")
        text = html.escape(a["text"]) if item["reference"] is None and name == names[0] else highlight(a["text"], base)
        draft = f'<div class="eval-draft">Texte généré écarté : {highlight(a["draft"], base)}</div>' if a.get("draft") else ""
        cards.append(f'<div class="eval-card"><h4>{html.escape(name)}</h4><div class="eval-meta">{" · ".join(meta)}'
                     f"</div><div>{text}</div>{draft}</div>")  # fmt: skip
    return DIFF_CSS + "".join(head) + f'<div class="eval-grid">{"".join(cards)}</div>'


JOURNAL_ACTIONS = {"promote": "promotion", "rollback": "retour arrière", "propose": "proposition",
                   "reject": "proposition refusée"}  # fmt: skip


def journal_frame(entries: list[dict]) -> pd.DataFrame:
    """Proposals, promotions and rollbacks, newest first."""
    rows = [{"date": e["at"], "action": JOURNAL_ACTIONS.get(e["action"], e["action"]),
             "par": e["by"], "modèle": (e.get("choice") or {}).get("label", "réglages par défaut"),
             "origine": (e.get("choice") or {}).get("origin", ""), "précédent": (e.get("previous") or {}).get("label", "réglages par défaut")}
            for e in entries]  # fmt: skip
    return pd.DataFrame(rows, columns=["date", "action", "par", "modèle", "origine", "précédent"])
