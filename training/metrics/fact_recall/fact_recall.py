"""Fact recall: share of expected facts (short strings) that an answer contains, accent- and case-insensitively."""

import re
import unicodedata

import datasets
import evaluate

_DESCRIPTION = """\
For each answer, the share of its expected facts (e.g. "3179", "Espace Abonné", "19,99 €") that it contains.
Matching is deliberately lenient: answer and facts are both folded like rag.text.compact (case folded, accents
stripped, every character other than a-z and 0-9 dropped), so "Espace Abonné" is found in "l'espace abonne"
and "19,99 €" in "19.99€": customers and models often drop accents and vary spacing. The folding is written
inline (same rules as rag.text.compact) so the module loads standalone. Being a substring test on compacted
text, a fact can match across word boundaries ("3179" is also found in "031790"). Facts that fold to an empty
string are ignored; items without facts are left out of the averages.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of str): generated answers.
    references (list of list of str): the facts each answer should contain.
Returns:
    fact_recall (float, 0-1): mean over items with at least one fact of found / expected (None if no such item).
    items_all_facts (float, 0-1): share of those items where every fact is found (None if no such item).
    items (int): number of items with at least one fact.
Example:
    >>> facts = evaluate.load("training/metrics/fact_recall")
    >>> facts.compute(predictions=["Allez dans l'espace abonne."], references=[["Espace Abonné", "3179"]])
    {'fact_recall': 0.5, 'items_all_facts': 0.0, 'items': 1}
"""


def compact(text: str) -> str:
    """Case-folded text without accents nor any character outside a-z0-9 (same as rag.text.compact)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return re.sub(r"[^a-z0-9]", "", "".join(c for c in decomposed if not unicodedata.combining(c)))


class FactRecall(evaluate.Metric):
    """Recall of expected facts in generated answers."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
            ),
        )

    def _compute(self, predictions: list[str], references: list[list[str]]) -> dict:
        recalls = []
        for answer, facts in zip(predictions, references, strict=True):
            wanted = [f for f in map(compact, facts) if f]
            if wanted:
                folded = compact(answer)
                recalls.append(sum(f in folded for f in wanted) / len(wanted))
        if not recalls:
            return {"fact_recall": None, "items_all_facts": None, "items": 0}
        return {
            "fact_recall": sum(recalls) / len(recalls),
            "items_all_facts": sum(r == 1.0 for r in recalls) / len(recalls),
            "items": len(recalls),
        }
