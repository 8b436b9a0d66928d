"""Calibration of the confidence and out-of-scope thresholds on data (see `python -m bench.calibrate`).

In-domain examples come from the KB itself: each FAQ phrasing variant is asked against an index
built without it (k-fold), so its retrieval confidence is that of an unseen paraphrase. They are
joined by the tuning set's questions; out-of-scope examples are the tuning set's and a set of
generic negatives (`datasets/eval/chat_negatives.jsonl`). Nothing here reads the held-out or
blind sets.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.embeddings import Embedder
from rag.index import KnowledgeIndex, lexical_document, make_views
from rag.nlu import analyze_message
from rag.retriever import HybridRetriever
from rag.sources import Entry
from rag.vectorstore import NumpyVectorStore
from settings import RagConfig


@dataclass
class Example:
    """One question with what the scope and confidence rules look at, and what is right for it."""

    question: str
    in_scope: bool
    domain: str  # "strong", "weak", "none" (rag.nlu)
    ruled: bool  # a rule decides scope alone: another company, or an escalation request
    confidence: float
    known: float  # share of the question's words the KB uses (Retrieval.raw_known_ratio)
    correct: bool | None  # in-scope: did the best hit answer it (None when unknown)
    source: str


class _CachedEncoder:
    """Embeds each text once (views and queries repeat across folds)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.vectors: dict[str, np.ndarray] = {}

    def warm(self, texts: Iterable[str]) -> None:
        missing = sorted({t for t in texts if t not in self.vectors})
        if missing:
            self.vectors.update(zip(missing, self.embedder.encode(missing), strict=True))

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        self.warm(texts)
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


def _index_without(entries: list[Entry], dropped: set[tuple[int, int]], config: RagConfig,
                   encoder: _CachedEncoder) -> KnowledgeIndex:
    """An in-memory index of `entries` minus the (entry, phrasing) pairs in `dropped`."""
    import bm25s

    kept = []
    for i, entry in enumerate(entries):
        clone = copy.copy(entry)
        clone.questions = [q for j, q in enumerate(entry.questions) if (i, j) not in dropped]
        kept.append(clone)
    views = make_views(kept, config)
    store = NumpyVectorStore(0, encoder.encode([v["text"] for v in views]))
    bm25 = bm25s.BM25()
    bm25.index([lexical_document(e) for e in kept], show_progress=False)
    return KnowledgeIndex(Path("."), kept, views, store, bm25)


def variant_examples(entries: list[Entry], config: RagConfig, embedder: Embedder, folds: int = 5,
                     seed: int = 0) -> list[Example]:
    """Every FAQ phrasing variant, asked against an index built without its fold."""
    pairs = [(i, j) for i, e in enumerate(entries) if e.kind == "faq" for j in range(1, len(e.questions))]
    random.Random(seed).shuffle(pairs)
    encoder = _CachedEncoder(embedder)
    encoder.warm([v["text"] for v in make_views(entries, config)])
    examples = []
    for f in range(folds):
        held = pairs[f::folds]
        retriever = HybridRetriever(_index_without(entries, set(held), config, encoder), encoder, config)
        for i, j in held:
            question = entries[i].questions[j]
            examples.append(_example(question, True, retriever, lambda top, i=i: top == entries[i].id, "kb_variants"))
    return examples


def _example(question: str, in_scope: bool, retriever: HybridRetriever, is_right: Callable[[str], bool] | None,
             source: str) -> Example:
    analysis = analyze_message(question)
    retrieval = retriever.search(analysis.topic or question)
    top = retrieval.top
    return Example(
        question=question,
        in_scope=in_scope,
        domain=analysis.domain,
        ruled=analysis.competitor_offer or analysis.other_service or bool(analysis.escalation_reasons),
        confidence=round(top.score, 4) if top else 0.0,
        known=round(retrieval.raw_known_ratio, 4),
        correct=(is_right(top.entry.id) if top else False) if is_right else None,
        source=source,
    )


def eval_set_examples(items: list[dict], retriever: HybridRetriever, source: str,
                      judge: Callable[[dict, str], bool] | None = None) -> list[Example]:
    """Examples from an evaluation set's items (`judge(item, top_entry_id)` says whether the top hit is right)."""
    return [
        _example(item["question"], not item.get("out_of_scope"), retriever,
                 (lambda top, item=item: judge(item, top)) if judge else None, source)
        for item in items
    ]


def scope_score(example: Example, known_weight: float) -> float:
    """What the out-of-scope rule compares to its threshold (rag.answer.AnswerEngine._out_of_scope)."""
    return example.confidence + known_weight * example.known


def scope_curve(examples: list[Example], domain: str, thresholds: Iterable[float], known_weight: float = 0.0) -> list[dict]:
    """For each threshold: in-domain questions wrongly declared out of scope, out-of-scope ones caught."""
    pool = [e for e in examples if e.domain == domain and not e.ruled]
    inside = [scope_score(e, known_weight) for e in pool if e.in_scope]
    outside = [scope_score(e, known_weight) for e in pool if not e.in_scope]
    curve = []
    for t in thresholds:
        false_oos = sum(score < t for score in inside)
        caught = sum(score < t for score in outside)
        curve.append({
            "threshold": round(t, 3),
            "false_out_of_scope": round(false_oos / len(inside), 4) if inside else None,
            "out_of_scope_recall": round(caught / len(outside), 4) if outside else None,
            "errors": false_oos + len(outside) - caught,
        })
    return curve


def best_threshold(curve: list[dict]) -> tuple[float, int]:
    """The threshold with the fewest errors, in the middle of the run of equally good ones (widest margin)."""
    fewest = min(p["errors"] for p in curve)
    best = [p["threshold"] for p in curve if p["errors"] == fewest]
    return best[len(best) // 2], fewest


def confidence_curve(examples: list[Example], thresholds: Iterable[float]) -> list[dict]:
    """For each threshold: share of in-domain questions answered, and how often that answer was the right entry."""
    judged = [e for e in examples if e.in_scope and e.correct is not None]
    curve = []
    for t in thresholds:
        answered = [e for e in judged if e.confidence >= t]
        wrong_below = sum(e.correct for e in judged if e.confidence < t)
        curve.append({
            "threshold": round(t, 3),
            "answered": round(len(answered) / len(judged), 4) if judged else None,
            "right_when_answered": round(sum(e.correct for e in answered) / len(answered), 4) if answered else None,
            "right_but_escalated": wrong_below,
        })
    return curve
