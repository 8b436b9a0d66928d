"""Corpus BLEU (sacrebleu) as an `evaluate` metric module."""

import datasets
import evaluate
from sacrebleu.metrics import BLEU

_DESCRIPTION = """\
Corpus-level BLEU (Papineni et al., 2002) computed by sacrebleu: geometric mean of modified 1- to 4-gram
precisions times a brevity penalty, with sacrebleu's default exponential smoothing. Text is tokenized by
sacrebleu's "13a" tokenizer (default, the WMT standard) or "intl" (splits on Unicode punctuation and symbols).
"""

_CITATION = """\
@inproceedings{papineni-etal-2002-bleu,
    title = "{B}leu: a Method for Automatic Evaluation of Machine Translation",
    author = "Papineni, Kishore and Roukos, Salim and Ward, Todd and Zhu, Wei-Jing",
    booktitle = "Proceedings of the 40th Annual Meeting of the Association for Computational Linguistics",
    year = "2002",
    url = "https://aclanthology.org/P02-1040",
    pages = "311--318",
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
    tokenize (str): sacrebleu tokenizer, "13a" (default), "intl", "char" or "none".
    lowercase (bool): compare lower-cased text. Defaults to False.
Returns:
    score (float, 0-100): corpus BLEU (None, like the other fields, for an empty corpus).
    precisions (list of 4 floats, 0-100): modified n-gram precisions.
    brevity_penalty (float, 0-1), sys_len (int), ref_len (int).
Example:
    >>> bleu = evaluate.load("training/metrics/bleu")
    >>> result = bleu.compute(predictions=["le mode avion est activé"], references=["le mode avion est activé"])
    >>> round(result["score"], 2), result["brevity_penalty"]
    (100.0, 1.0)
"""

TOKENIZERS = ("13a", "intl", "char", "none")


class Bleu(evaluate.Metric):
    """Corpus BLEU through sacrebleu."""

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
        self, predictions: list[str], references: list[str], tokenize: str = "13a", lowercase: bool = False
    ) -> dict:
        if tokenize not in TOKENIZERS:
            raise ValueError(f"bleu: unknown tokenize={tokenize!r}, expected one of {', '.join(TOKENIZERS)}")
        if not predictions:
            return {"score": None, "precisions": None, "brevity_penalty": None, "sys_len": 0, "ref_len": 0}
        result = BLEU(tokenize=tokenize, lowercase=lowercase).corpus_score(predictions, [references])
        return {
            "score": result.score,
            "precisions": list(result.precisions),
            "brevity_penalty": result.bp,
            "sys_len": result.sys_len,
            "ref_len": result.ref_len,
        }
