"""Answer engine: hybrid retrieval + rules -> a grounded, explainable `Answer`.

The extractive mode never writes facts of its own: the reply is the best KB entry's text, plus
fixed sentences for escalation, out-of-scope and small talk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from rag.embeddings import Embedder
from rag.index import KnowledgeIndex, build_index
from rag.llm.manager import ModelManager
from rag.nlu import analyze_message, is_follow_up, ticket_priority
from rag.retriever import HybridRetriever, Retrieval
from rag.sources import DEFAULT_LINKS
from settings import RagConfig

log = logging.getLogger(__name__)

OUT_OF_SCOPE_TEXT = (
    "Je suis l'assistant du service client Free Mobile : je peux vous aider sur votre forfait, vos "
    "factures, le réseau, les options, l'activation ou la résiliation de votre ligne. Cette question "
    "sort de ce cadre, je préfère donc ne pas y répondre plutôt que de vous donner une information "
    "inexacte. Pour toute autre demande liée à Free Mobile, l'assistance en ligne reste à votre "
    "disposition."
)
LOW_CONFIDENCE_TEXT = (
    "Je ne trouve pas de réponse sûre à votre question dans notre base d'aide. Plutôt que de risquer "
    "une information inexacte, je transmets votre demande à un conseiller."
)
GREETING_TEXT = (
    "Bonjour ! Je suis l'assistant Free Mobile. Posez-moi votre question sur votre forfait, vos "
    "factures, le réseau ou vos options, je vous réponds tout de suite."
)
THANKS_TEXT = "Avec plaisir ! Avez-vous une autre question ? Je reste à votre disposition."
HANDOFF_TEXT = "Bien sûr : je transmets votre demande à un conseiller, qui reprendra cette conversation ici même."
ESCALATION_TEXT = "Je transmets votre demande à un conseiller, qui reprendra cette conversation ici même."
EMPATHY_TEXT = "Je suis désolé pour la gêne occasionnée et je comprends votre agacement."


@dataclass
class Source:
    """A KB entry an answer relies on."""

    id: str
    title: str
    score: float


@dataclass
class Answer:
    """Everything the chat, the API and the CLI need to show or log about one answer."""

    text: str
    sources: list[Source] = field(default_factory=list)
    intent: str = "général"
    confidence: float = 0.0
    needs_escalation: bool = False
    escalation_reasons: list[str] = field(default_factory=list)
    priority: str | None = None
    out_of_scope: bool = False
    sentiment: float = 0.0
    links: list[dict] = field(default_factory=list)
    latency_ms: float = 0.0
    mode_used: str = "extractive"
    fallback_reason: str | None = None
    top_entry: str | None = None
    draft: str | None = None  # generated text discarded by a fallback (kept for evaluation and logs)

    def to_dict(self) -> dict:
        """JSON-friendly form (the `python -m rag ask --json` contract)."""
        return asdict(self)


def _links(intent: str, entry_links: list[str], escalate: bool) -> list[dict]:
    labels = {
        DEFAULT_LINKS["faq"]: "FAQ Free Mobile",
        DEFAULT_LINKS["espace_abonne"]: "Espace Abonné",
        DEFAULT_LINKS["contact"]: "Contacter l'assistance",
    }
    urls = list(entry_links)
    if intent in ("facturation", "forfait", "résiliation", "activation"):
        urls.append(DEFAULT_LINKS["espace_abonne"])
    urls.append(DEFAULT_LINKS["faq"])
    if escalate or intent in ("réclamation", "assistance"):
        urls.append(DEFAULT_LINKS["contact"])
    seen: list[str] = []
    for url in urls:
        if url not in seen:
            seen.append(url)
    return [{"label": labels.get(u, u.removeprefix("https://")), "url": u} for u in seen]


class AnswerEngine:
    """Loads the index once (thread-safe) and answers questions; stateless between calls."""

    def __init__(self, config: RagConfig, embedder: Embedder | None = None, llm: ModelManager | None = None) -> None:
        self.config = config
        self.embedder = embedder or Embedder.from_config(config)
        self.llm = llm if llm is not None else ModelManager(config.llm)  # loads nothing until start()
        self.answer_mode = config.answer_mode  # a promoted chat model may change it (rag/llm/selection.py)
        self._retriever: HybridRetriever | None = None
        self._lock = threading.Lock()

    @property
    def retriever(self) -> HybridRetriever:
        """The retriever over the current index, building the index first if none exists."""
        if self._retriever is None:
            with self._lock:
                if self._retriever is None:
                    try:
                        index = KnowledgeIndex.load(self.config.index_dir, self.config.vector_store)
                    except FileNotFoundError:
                        log.info("No index yet: building it from %s", self.config.kb_dir)
                        build_index(self.config, self.embedder)
                        index = KnowledgeIndex.load(self.config.index_dir, self.config.vector_store)
                    _ = self.embedder.encoder  # load the weights now, not inside the first answer
                    self._retriever = HybridRetriever(index, self.embedder, self.config)
        return self._retriever

    def warm_up(self) -> None:
        """Load index and model and run one query so the first customer does not wait."""
        self.retriever.search("facture")

    def use_model(self, answer_mode: str, llm_config) -> None:
        """Answer in `answer_mode` with a backend built from `llm_config` (loaded in the background).

        Questions in flight finish with the previous backend, which is closed on a side thread.
        """
        old = self.llm
        if llm_config != old.config:
            self.llm = ModelManager(llm_config)
            threading.Thread(target=old.close, name="llm-close", daemon=True).start()
        self.answer_mode = answer_mode
        if answer_mode != "extractive" and (self.config.llm.preload or self.llm is not old):
            self.llm.start()

    def reload(self) -> None:
        """Drop the loaded index so the next question uses a fresh build."""
        with self._lock:
            self._retriever = None

    def answer(
        self,
        question: str,
        previous_top_entries: list[str] | None = None,
        previous_question: str | None = None,
        history: list[tuple[str, str]] | None = None,
        mode: str | None = None,
        timeout: float | None = None,
    ) -> Answer:
        """Answer one customer message in the configured mode (or `mode`); see stream_answer()."""
        final = None
        for final in self.stream_answer(question, previous_top_entries, previous_question, history, mode, timeout):  # noqa: B007
            pass
        return final

    def stream_answer(
        self,
        question: str,
        previous_top_entries: list[str] | None = None,
        previous_question: str | None = None,
        history: list[tuple[str, str]] | None = None,
        mode: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[str | Answer]:
        """Yield the growing answer text (generative modes), then the final `Answer` (always last).

        previous_top_entries are the top KB ids of earlier turns (repeated-problem rule);
        previous_question lets an elliptical follow-up ("et pour le forfait 2€ ?") be understood;
        history holds the last (question, answer) pairs for the generative prompt. The escalation,
        scope and confidence rules run first in every mode: only the wording of a grounded answer
        is generated, and any failure falls back to the extractive text with the reason recorded.
        """
        start = time.perf_counter()
        answer, entries, empathy = self._extractive(question, previous_top_entries, previous_question)
        mode = mode or self.answer_mode
        if mode == "extractive" or not entries:
            yield answer  # rules (small talk, out of scope, low confidence) answered already
            return
        from rag.generative import generate_answer

        yield from generate_answer(self, answer, entries, empathy, question, history, mode, timeout, start)

    def _extractive(
        self, question: str, previous_top_entries: list[str] | None, previous_question: str | None
    ) -> tuple[Answer, list, bool]:
        """The rule-checked extractive answer, the KB entries it is grounded on ([] if none) and the empathy flag."""
        retriever = self.retriever  # first call loads model and index: not part of the answer latency
        start = time.perf_counter()
        question = question.strip()
        analysis = analyze_message(question)
        if analysis.small_talk and not analysis.escalation_reasons:
            text = GREETING_TEXT if analysis.small_talk == "greeting" else THANKS_TEXT
            answer = Answer(text=text, intent="général", confidence=1.0, links=_links("général", [], False))
            return self._finish(answer, start), [], False

        topic = analysis.topic or question
        retrieval: Retrieval = retriever.search(topic)
        if previous_question and is_follow_up(question):
            # The new message counts twice so it steers; the previous one supplies the subject.
            combined = retriever.search(f"{topic} {topic} {previous_question}")
            standalone = {h.entry.id for h in retriever.search(topic, k=10).hits}
            if combined.top and combined.top.entry.id in standalone:
                retrieval = combined
        top = retrieval.top
        confidence = round(top.score, 4) if top else 0.0
        reasons = list(analysis.escalation_reasons)
        out_of_scope = analysis.competitor_offer or (
            not analysis.has_domain_term and confidence < self.config.out_of_scope_confidence and not reasons
        )
        if out_of_scope:
            answer = Answer(text=OUT_OF_SCOPE_TEXT, intent="général", confidence=confidence, out_of_scope=True,
                            sentiment=analysis.sentiment, links=_links("général", [], False))
            return self._finish(answer, start), [], False

        grounded = top is not None and confidence >= self.config.min_confidence
        intent = analysis.intent
        if grounded and intent in ("général", "assistance"):
            intent = top.entry.category  # KB categories use the intent labels
        if grounded and previous_top_entries is not None:
            repeats = 1 + previous_top_entries.count(top.entry.id)
            if repeats >= self.config.repeat_limit:
                reasons.append("problème non résolu après plusieurs tentatives")
        if not grounded:
            reasons.append("confiance de recherche insuffisante")

        parts = []
        if "mécontentement important" in reasons:
            parts.append(EMPATHY_TEXT)
        if grounded:
            parts.append(top.entry.answer)
        elif len(reasons) > 1:  # a human was asked for (or anger, a dispute...) but no topic was found
            parts.append(HANDOFF_TEXT)
        else:
            parts.append(LOW_CONFIDENCE_TEXT)
        if reasons and grounded:
            parts.append(ESCALATION_TEXT)
        escalate = bool(reasons)
        answer = Answer(
            text="\n\n".join(parts),
            sources=[Source(h.entry.id, h.entry.title, round(h.score, 4)) for h in retrieval.hits] if grounded else [],
            intent=intent,
            confidence=confidence,
            needs_escalation=escalate,
            escalation_reasons=reasons,
            priority=ticket_priority(analysis, reasons) if escalate else None,
            sentiment=analysis.sentiment,
            links=_links(intent, top.entry.links if grounded else [], escalate),
            top_entry=top.entry.id if top else None,
        )
        entries = [h.entry for h in retrieval.hits[: self.config.llm.context_entries]] if grounded else []
        return self._finish(answer, start), entries, "mécontentement important" in reasons

    @staticmethod
    def _finish(answer: Answer, start: float) -> Answer:
        answer.latency_ms = round((time.perf_counter() - start) * 1000, 2)
        return answer
