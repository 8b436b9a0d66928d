"""Markdown / table formatting of the KB tabs (pure functions, no Gradio)."""

from __future__ import annotations

from rag.gaps import REASON_LABELS

STATUS_LABELS = {"draft": "brouillon", "published": "publiée", "retired": "retirée"}


def entries_table(rows: list[dict]) -> list[list]:
    """Rows of the editor's entry list."""
    return [[r["id"], r["title"], r["category"], STATUS_LABELS.get(r["status"], r["status"]), len(r["questions"]),
             r["author"]] for r in rows]  # fmt: skip


def history_table(history: list[dict]) -> list[list]:
    """Rows of an entry's history."""
    return [[h["id"], h["action"], h["author"], h["at"].strftime("%d/%m/%Y %H:%M")] for h in history]


def bench_markdown(side: dict, label: str) -> str:
    """One side of the test bench: ranked entries, rules, the customer's answer."""
    rules = side["rules"]
    lines = [f"### {label}", "| # | Entrée | Fusion | Dense | Lexical |", "|---|---|---|---|---|"]
    lines += [f"| {n} | `{h['id']}` {h['title']} | {h['fused']:.3f} | {h['dense']:.3f} | {h['lexical']:.3f} |"
              for n, h in enumerate(side["hits"], start=1)]  # fmt: skip
    escalation = ", ".join(rules["escalation"]) or "aucune"
    lines += ["", f"**Intention** : {rules['intent']} — **confiance** : {rules['confidence']:.3f} — "
              f"**hors sujet** : {'oui' if rules['out_of_scope'] else 'non'} — **escalade** : {escalation} — "
              f"**entrée choisie** : `{rules['top_entry'] or '—'}`", "", "**Réponse au client :**", "",
              "> " + side["answer"].replace("\n", "\n> ")]  # fmt: skip
    return "\n".join(lines)


def gaps_table(groups: list[dict]) -> list[list]:
    """Rows of the knowledge-gaps view."""
    return [[n, g["question"], g["count"], f"{g['first'][:10]} → {g['last'][:10]}",
             ", ".join(REASON_LABELS.get(k, k) for k in g["reasons"]), ", ".join(g["entries"]),
             " / ".join(g["comments"])] for n, g in enumerate(groups, start=1)]  # fmt: skip


def gate_markdown(result) -> str:
    """The gate's verdict with the questions whose result changed."""
    lines = [f"**{result.summary()}**"]
    lines += [f"- {r}" for r in result.reasons]
    if result.changed:
        lines += ["", "| Question | Avant | Après | Entrée avant → après |", "|---|---|---|---|"]
        lines += [f"| {c['id']} — {c['question']} | {'✅' if c['before'] else '❌'} | {'✅' if c['after'] else '❌'} | "
                  f"`{c['before_entry']}` → `{c['after_entry']}` |" for c in result.changed]  # fmt: skip
    return "\n".join(lines)


def journal_markdown(journal: list[dict]) -> str:
    """The last publications, rollbacks and overrides."""
    labels = {"publish": "publication", "override": "publication forcée (admin)", "rollback": "retour arrière",
              "import": "import"}  # fmt: skip
    return "\n".join(f"- {j['at']} — {labels.get(j['action'], j['action'])} par {j['by']} (version {j['version']})"
                     + (f" : {j['note']}" if j.get("note") else "") for j in journal[:10]) or "Aucune publication."  # fmt: skip
