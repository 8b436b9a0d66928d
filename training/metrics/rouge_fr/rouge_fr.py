"""ROUGE-1/2/L for French: rouge-score's RougeScorer with an accent-keeping French tokenizer."""

import datasets
import evaluate
from rouge_score import rouge_scorer, tokenizers

from .french_tokenizer import french_tokens

_DESCRIPTION = """\
ROUGE-1, ROUGE-2 and ROUGE-L F-measures (Lin, 2004) computed with Google's rouge-score package, averaged over
the (prediction, reference) pairs. rouge-score's default tokenizer keeps only [a-z0-9], so French words lose
their accented letters ("été" vanishes, "réseau" becomes "r seau"); this module tokenizes instead with NFC,
lower case, accented letters kept, elisions split ("l'option" -> "l", "option") and decimal numbers kept
whole ("19,99"). No stemming unless use_stemmer=True (Snowball French stemmer from PyStemmer).
"""

_CITATION = """\
@inproceedings{lin-2004-rouge,
    title = "{ROUGE}: A Package for Automatic Evaluation of Summaries",
    author = "Lin, Chin-Yew",
    booktitle = "Text Summarization Branches Out",
    year = "2004",
    address = "Barcelona, Spain",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/W04-1013",
    pages = "74--81",
}
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of str): generated answers.
    references (list of str): one reference answer per prediction.
    use_stemmer (bool): stem tokens with the Snowball French stemmer. Defaults to False.
Returns:
    rouge1, rouge2, rougeL (float, 0-1): mean F-measure over the pairs (None for an empty corpus).
Example:
    >>> rouge = evaluate.load("training/metrics/rouge_fr")
    >>> rouge.compute(predictions=["réseau coupé"], references=["réseau coupé"])["rougeL"]
    1.0
"""

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


class FrenchTokenizer(tokenizers.Tokenizer):
    """rouge-score tokenizer interface over `french_tokens`."""

    def __init__(self, stem: bool = False) -> None:
        self.stem = stem

    def tokenize(self, text: str) -> list[str]:
        return french_tokens(text, stem=self.stem)


class RougeFr(evaluate.Metric):
    """ROUGE-1/2/L mean F-measures with French tokenization."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
        )

    def _compute(self, predictions: list[str], references: list[str], use_stemmer: bool = False) -> dict:
        scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=FrenchTokenizer(stem=use_stemmer))
        totals = dict.fromkeys(ROUGE_TYPES, 0.0)
        for prediction, reference in zip(predictions, references, strict=True):
            scores = scorer.score(reference, prediction)  # score(target, prediction)
            for key in ROUGE_TYPES:
                totals[key] += scores[key].fmeasure
        return {key: total / len(predictions) if predictions else None for key, total in totals.items()}
