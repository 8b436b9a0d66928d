"""Hybrid retrieval: dense cosine (FAISS) fused with saturated BM25, grouped by KB entry."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rag.embeddings import Embedder
from rag.index import KnowledgeIndex
from rag.sources import Entry
from rag.text import analyze
from settings import RagConfig


@dataclass
class Hit:
    """One KB entry with its fused score and the two signals behind it."""

    entry: Entry
    score: float
    dense: float
    lexical: float


@dataclass
class Retrieval:
    """Ranked hits plus query diagnostics used for confidence and scope decisions."""

    hits: list[Hit]
    tokens: list[str]
    known_ratio: float

    @property
    def top(self) -> Hit | None:
        """Best hit, if any."""
        return self.hits[0] if self.hits else None


class HybridRetriever:
    """Scores every entry with w_d * dense + w_l * bm25 / (bm25 + saturation)."""

    def __init__(self, index: KnowledgeIndex, embedder: Embedder, config: RagConfig) -> None:
        self.index = index
        self.embedder = embedder
        self.config = config

    def dense_scores(self, query: str) -> np.ndarray:
        """Best cosine per entry over its views (questions and answer chunks)."""
        vector = self.embedder.encode_query(query)
        k = min(self.index.store.size, max(self.config.candidates, 4096))
        scores, ids = self.index.store.search(vector, k)
        per_entry = np.zeros(len(self.index.entries), dtype=np.float32)
        valid = ids >= 0
        np.maximum.at(per_entry, self.index.view_entry[ids[valid]], np.clip(scores[valid], 0, None))
        return per_entry

    def lexical_scores(self, tokens: list[str]) -> np.ndarray:
        """Raw BM25 score per entry for already-analyzed query tokens."""
        known = [t for t in tokens if t in self.index.vocab]
        if not known:
            return np.zeros(len(self.index.entries), dtype=np.float32)
        return np.asarray(self.index.bm25.get_scores(known), dtype=np.float32)

    def search(self, query: str, k: int | None = None) -> Retrieval:
        """Rank entries for a query; k defaults to the configured top_k."""
        k = k or self.config.top_k
        raw_tokens = analyze(query)
        tokens = self.index.corrector.correct(raw_tokens)
        content = [t for t in tokens if not t.startswith("grp_")]
        known_ratio = (sum(t in self.index.vocab for t in content) / len(content)) if content else 0.0
        dense = self.dense_scores(query)
        bm25 = self.lexical_scores(tokens)
        lexical = bm25 / (bm25 + self.config.lexical_saturation)
        fused = self.config.dense_weight * dense + self.config.lexical_weight * lexical
        order = np.argsort(-fused)[:k]
        hits = [
            Hit(self.index.entries[i], float(fused[i]), float(dense[i]), float(lexical[i]))
            for i in order
            if fused[i] > 0
        ]
        return Retrieval(hits, tokens, known_ratio)
