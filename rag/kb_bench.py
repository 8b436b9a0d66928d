"""Retrieval test bench: how the published KB and the working copy (draft) handle one question.

For each side: the ranked entries with their dense, lexical and fused scores, the rules that fired
(intent, escalation reasons, out-of-scope, confidence) and the exact text the customer would get.
The draft side answers from an index of the working copy, rebuilt only when the draft changed.
"""

from __future__ import annotations

import threading

from rag.index import build_index, fingerprint
from rag.nlu import analyze_message


def explain(engine, question: str, k: int = 5) -> dict:
    """Ranked hits, rules and the customer's answer for one question on one answer engine."""
    analysis = analyze_message(question.strip())
    retrieval = engine.retriever.search(analysis.topic or question, k=k)
    answer = engine.answer(question, mode="extractive")
    return {
        "hits": [{"id": h.entry.id, "title": h.entry.title, "fused": round(h.score, 3), "dense": round(h.dense, 3),
                  "lexical": round(h.lexical, 3)} for h in retrieval.hits],
        "rules": {
            "intent": answer.intent,
            "confidence": answer.confidence,
            "out_of_scope": answer.out_of_scope,
            "escalation": answer.escalation_reasons,
            "top_entry": answer.top_entry,
        },
        "answer": answer.text,
    }


class DraftEngines:
    """An answer engine over the working copy, rebuilt when its fingerprint changes."""

    def __init__(self, publisher) -> None:
        self.publisher = publisher
        self._engine = None
        self._key = None
        self._lock = threading.Lock()

    def engine(self):
        """The draft's extractive answer engine (builds its index the first time and after edits)."""
        from rag.answer import AnswerEngine

        config = self.publisher.config.model_copy(
            update={"index_dir": self.publisher.config.index_dir / "draft", "answer_mode": "extractive"}
        )
        entries = self.publisher.candidate_entries()
        key = fingerprint(config, entries)
        with self._lock:
            if self._engine is None or key != self._key:
                build_index(config, self.publisher.embedder, entries=entries)
                self._engine, self._key = AnswerEngine(config, self.publisher.embedder), key
            return self._engine

    def compare(self, published_engine, question: str) -> dict:
        """{"published": explain(...), "draft": explain(...)} for one question."""
        return {"published": explain(published_engine, question), "draft": explain(self.engine(), question)}
