"""Corpus chrF / chrF++ (sacrebleu) as an `evaluate` metric module."""

import datasets
import evaluate
from sacrebleu.metrics import CHRF

_DESCRIPTION = """\
Corpus-level chrF (Popović, 2015): character n-gram F-score (n up to 6, recall weighted by beta=2), computed
by sacrebleu. word_order=2 gives chrF++ (Popović, 2017), which adds word uni- and bigrams. Character n-grams
make it robust to French inflection; whitespace is ignored and accents count as distinct characters.
"""

_CITATION = """\
@inproceedings{popovic-2015-chrf,
    title = "chr{F}: character n-gram {F}-score for automatic {MT} evaluation",
    author = "Popovi{\\'c}, Maja",
    booktitle = "Proceedings of the Tenth Workshop on Statistical Machine Translation",
    year = "2015",
    url = "https://aclanthology.org/W15-3049",
    pages = "392--395",
}
@inproceedings{popovic-2017-chrf,
    title = "chr{F}++: words helping character n-grams",
    author = "Popovi{\\'c}, Maja",
    booktitle = "Proceedings of the Second Conference on Machine Translation",
    year = "2017",
    url = "https://aclanthology.org/W17-4770",
    pages = "612--618",
}
@inproceedings{post-2018-call,
    title = "A Call for Clarity in Reporting {BLEU} Scores",
    author = "Post, Matt",
    booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers",
    year = "2018",
    url = "https://aclanthology.org/W18-6319",
    pages = "186--191",
}
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of str): generated answers.
    references (list of str): one reference answer per prediction.
    word_order (int): 0 for chrF (default), 2 for chrF++.
    lowercase (bool): compare lower-cased text. Defaults to False.
Returns:
    score (float, 0-100): corpus chrF (None for an empty corpus).
Example:
    >>> chrf = evaluate.load("training/metrics/chrf")
    >>> chrf.compute(predictions=["Votre facture est prête."], references=["Votre facture est prête."])
    {'score': 100.0}
"""


class Chrf(evaluate.Metric):
    """Corpus chrF / chrF++ through sacrebleu."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            codebase_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(
        self, predictions: list[str], references: list[str], word_order: int = 0, lowercase: bool = False
    ) -> dict:
        if not predictions:
            return {"score": None}
        chrf = CHRF(word_order=word_order, lowercase=lowercase)
        return {"score": chrf.corpus_score(predictions, [references]).score}
