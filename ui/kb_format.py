"""Markdown / table formatting of the KB tabs (pure functions, no Gradio)."""

from __future__ import annotations

import re

from rag.gaps import REASON_LABELS

STATUS_LABELS = {"draft": "brouillon", "published": "publiée", "retired": "retirée"}
ACTION_LABELS = {"import": "import", "create": "création", "update": "modification", "retire": "retrait",
                 "restore": "restauration", "propose": "proposition (conseiller)"}  # fmt: skip
JOURNAL_LABELS = {"publish": "publication", "override": "publication forcée (admin)", "rollback": "retour arrière",
                  "import": "import"}  # fmt: skip


def decimal(value: float, digits: int = 3) -> str:
    """A number the French way (decimal comma)."""
    return f"{value:.{digits}f}".replace(".", ",")


def when(iso: str) -> str:
    """'2026-12-02T09:05:11Z' -> '02/12/2026 09:05'."""
    day, _, time = iso.rstrip("Z").partition("T")
    return f"{'/'.join(reversed(day.split('-')))} {time[:5]}".strip()


def entries_table(rows: list[dict]) -> list[list]:
    """Rows of the editor's entry list."""
    return [[r["id"], r["title"], r["category"], STATUS_LABELS.get(r["status"], r["status"]), len(r["questions"]),
             r["author"]] for r in rows]  # fmt: skip


def history_table(history: list[dict]) -> list[list]:
    """Rows of an entry's history."""
    return [[h["id"], ACTION_LABELS.get(h["action"], h["action"]), h["author"], h["at"].strftime("%d/%m/%Y %H:%M"),
             h["note"]] for h in history]  # fmt: skip


BENCH_COLUMNS = ["Entrée", "Titre", "Fusion", "Dense", "Lexical"]
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def md_escape(text: str) -> str:
    """Text typed by people (questions, notes, titles) shown literally inside Markdown."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text or "").split()))


def bench_hits(side: dict) -> list[list]:
    """Rows of one side of the test bench: the entries in rank order and their scores."""
    return [[h["id"], h["title"], decimal(h["fused"]), decimal(h["dense"]), decimal(h["lexical"])] for h in side["hits"]]


def bench_markdown(side: dict) -> str:
    """One side of the test bench below its table: the rules that fired and the customer's exact answer."""
    rules = side["rules"]
    escalation = md_escape(", ".join(rules["escalation"])) or "aucune"
    return "\n".join([
        f"**Intention** : {md_escape(rules['intent'])} — **confiance** : {decimal(rules['confidence'])} — "
        f"**hors sujet** : {'oui' if rules['out_of_scope'] else 'non'} — **escalade** : {escalation} — "
        f"**entrée choisie** : `{rules['top_entry'] or '—'}`",
        "", "**Réponse au client :**", "", "> " + side["answer"].replace("\n", "\n> "),
    ])  # fmt: skip


def gaps_table(groups: list[dict]) -> list[list]:
    """Rows of the knowledge-gaps view."""
    return [[n, g["question"], g["count"], f"{when(g['first'])[:10]} → {when(g['last'])[:10]}",
             ", ".join(REASON_LABELS.get(k, k) for k in g["reasons"]), ", ".join(g["entries"]),
             " / ".join(g["comments"])] for n, g in enumerate(groups, start=1)]  # fmt: skip


def gate_markdown(result) -> str:
    """The gate's verdict with the questions whose result changed."""
    lines = [f"**{result.summary()}**"]
    lines += [f"- {r}" for r in result.reasons]
    if result.changed:
        lines += ["", "| Question | Avant | Après | Entrée avant → après |", "|---|---|---|---|"]
        lines += [f"| {c['id']} — {md_escape(c['question'])} | {'✅' if c['before'] else '❌'} | {'✅' if c['after'] else '❌'} | "
                  f"`{c['before_entry']}` → `{c['after_entry']}` |" for c in result.changed]  # fmt: skip
    return "\n".join(lines)


PENDING_LABELS = {"added": "nouvelles", "changed": "modifiées", "retired": "retirées",
                  "proposed": "propositions de conseillers (non publiées tant qu'un formateur ne les reprend pas)"}  # fmt: skip


def pending_markdown(pending: dict[str, list[str]]) -> str:
    """The entries the next publication would change."""
    lines = [f"- **{len(ids)} {PENDING_LABELS[key]}** : " + ", ".join(f"`{i}`" for i in ids[:20])
             + (" …" if len(ids) > 20 else "") for key, ids in pending.items() if ids]  # fmt: skip
    if not lines:
        return "**Modifications en attente** : aucune, la base de travail est identique à la version publiée."
    return "**Modifications en attente de publication**\n\n" + "\n".join(lines)


def journal_markdown(journal: list[dict]) -> str:
    """The last publications, rollbacks and overrides."""
    lines = [f"- {when(j['at'])} UTC — {JOURNAL_LABELS.get(j['action'], j['action'])} par {j['by']} "
             f"(version {j['version']})" + (f" : {md_escape(j['note'])}" if j.get("note") else "") for j in journal[:10]]  # fmt: skip
    return "**Journal des publications**\n\n" + ("\n".join(lines) or "Aucune publication.")
