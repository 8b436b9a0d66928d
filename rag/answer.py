"""Answer engine: hybrid retrieval + rules -> a grounded, explainable `Answer`.

The extractive mode never writes facts of its own: the reply is the best KB entry's text, plus
fixed sentences for escalation, out-of-scope and small talk.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import TypeVar

import numpy as np

from rag.embeddings import Embedder
from rag.fair import FairSlots
from rag.index import KnowledgeIndex, build_index
from rag.intent import second_opinion, shipped_model
from rag.llm.manager import ModelManager
from rag.nlu import Analysis, analyze_message, is_follow_up, names_domain, ticket_priority
from rag.promises import drop_sentences, keep_promises_honest
from rag.retriever import Hit, HybridRetriever, Retrieval
from rag.sources import DEFAULT_LINKS, Entry, customer_label, customer_url
from rag.text import analyze, fold
from settings import RagConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

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
    """A KB entry an answer relies on (`used`: its text is in the answer; else a runner-up, for staff)."""

    id: str
    title: str
    score: float
    label: str = ""  # what a customer reads: a readable title, never the internal id
    url: str = ""
    used: bool = False

    @classmethod
    def of(cls, hit: Hit, used: bool) -> Source:
        """The source record of a retrieval hit."""
        entry = hit.entry
        return cls(entry.id, entry.title, round(hit.score, 4), customer_label(entry), customer_url(entry), used)


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
        """JSON-friendly form (the `python -m rag ask --json` contract): new lists and dicts, nothing shared.

        Built field by field: ``dataclasses.asdict`` deep-copies every string and number (about 50 calls
        per answer), a tenth of an API message's CPU outside the engine in a profile."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["sources"] = [dict(vars(source)) for source in self.sources]
        data["escalation_reasons"] = list(self.escalation_reasons)
        data["links"] = [dict(link) for link in self.links]
        return data


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


# Where a message asks a second question ("...? Et ...", "..., et au passage ...", "... et si je ...", "... + ..."),
# or puts its question after a statement ("Je change d'opérateur, je peux jeter ma SIM ?").
_SECOND_QUESTION = re.compile(
    r"\?+\s+(?=\S)|\s*[,;]\s*(?:et|mais|aussi|sinon|puis)\b(?:\s+(?:au passage|aussi|sinon|en plus|egalement))?"
    r"|\s+et\s+(?=(?:au passage|aussi|en plus|sinon|savoir|si|est-ce|comment|combien|ou|quand|quel\w*|pourquoi|"
    r"je peux|on peut|a partir|c'?\s?est quoi|c quoi|qu'?\s?est-ce)\b)|\s+\+\s+"
    # a second action after a shared verb: "je veux voir ma conso et changer ma CB" (an infinitive, not "et hier")
    r"|\s+et\s+(?!(?:hier|cher|premier|dernier|entier|particulier|leger)\b)(?=[a-z]{3,}(?:er|ir)\s+(?:ma|mon|mes|le|la|les|l'|un|une|de|d'|du|des)\b)"
    r"|\s*[,:]\s*(?=(?:je peux|puis-je|est-ce que|est-ce qu'|dois-je|je dois|faut-il|il faut|comment|combien|je fais quoi|"
    r"on fait quoi|que dois-je|qu'est-ce que|quand|pourquoi)\b)"
)
_BETWEEN_QUESTIONS = re.compile(r"\?|\+|\b(?:et|mais|aussi|sinon|puis)\b")
# A message announcing its questions ("deux questions :", "j'ai 2 questions") before asking them.
_ANNOUNCED = re.compile(r"^\W*(?:(?:j'?\s?ai|voici|alors)\s+)?(?:deux|2|plusieurs|quelques|trois|3)\s+(?:petites\s+)?questions?\b\W*")
# Rules that point at a category of entries: a cancellation request, a technical problem that persists.
_PREFERRED = {"demande de résiliation": "résiliation", "problème non résolu après plusieurs tentatives": "technique"}
# Sentences telling the customer how to ask for a human: pointless once they asked.
_ASK_FOR_HUMAN_HINT = re.compile(r"\b(?:dites-le|demandez|ecrivez|tapez)\b[^.!?]*\b(?:conseiller|mis en relation|humain)")


# Technical terms as a KB answer writes them: acronyms in capitals (MMSC, APN) and codes of 3+ digits (555, 3179).
_TERM = re.compile(r"(?<![\w.])(?:[A-Z]{3,6}|\d{3,5})(?![\w])")


@lru_cache(maxsize=4096)
def _answer_terms(answer: str) -> frozenset[str]:
    """The technical terms an answer writes, lower-cased."""
    return frozenset(term.lower() for term in _TERM.findall(answer))


def _question_terms(question: str) -> set[str]:
    """The question's words that could be technical terms, as typed in any case (3-6 letters or 3-5 digits)."""
    return {w for w in re.findall(r"[a-z0-9]+", fold(question)) if 3 <= len(w) <= 6}


def _names_something(text: str) -> bool:
    """Whether one part of a message can be a question of its own: two words the retriever indexes, or one
    it knows as a subject of this service ("où j'en suis de ma conso"), not filler ("franchement c'est de la")."""
    tokens = analyze(text)
    return sum(not t.startswith("grp_") for t in tokens) >= 2 or any(t.startswith("grp_") for t in tokens)


def split_question(text: str) -> list[str]:
    """The two questions of a two-part message (each with something to search for), else [].

    A boundary between two questions ("?", "..., et comment ...") wins over one that only ends an
    introducing statement ("Je pars à Malte : combien ..."): that statement is context for the first question."""
    folded = _ANNOUNCED.sub("", fold(text))
    splits = []
    for match in _SECOND_QUESTION.finditer(folded):
        first, second = folded[: match.start()].strip(" ,;?"), folded[match.end() :].strip(" ,;?")
        if _names_something(first) and _names_something(second):
            splits.append(([first, second], bool(_BETWEEN_QUESTIONS.search(match.group(0)))))
    return next((parts for parts, between in splits if between), splits[0][0] if splits else [])


def _blend(whole: np.ndarray, part: np.ndarray) -> np.ndarray:
    """The search vector of one part of a two-part question: the part's own meaning, kept in the
    context of the whole message (unit length, like every query vector)."""
    mixed = whole + part
    return mixed / max(float(np.linalg.norm(mixed)), 1e-9)


def entry_text(entry: Entry, escalated: bool, human_requested: bool) -> str:
    """An entry's answer as this turn may say it: no promise it will not keep, no "ask for a human" hint once asked."""
    text = entry.answer
    if human_requested:
        text = drop_sentences(text, _ASK_FOR_HUMAN_HINT) or text
    return keep_promises_honest(text, escalated)


def last_item(items: Iterator[T]) -> T:
    """The last item of an iterator, once it is exhausted (a streamed answer's final ``Answer``)."""
    final = None
    for final in items:  # noqa: B007
        pass
    return final


class AnswerEngine:
    """Loads the index once (thread-safe) and answers questions; stateless between calls."""

    def __init__(self, config: RagConfig, embedder: Embedder | None = None, llm: ModelManager | None = None) -> None:
        self.config = config
        self.embedder = embedder or Embedder.from_config(config)
        self.llm = llm if llm is not None else ModelManager(config.llm)  # loads nothing until start()
        self.answer_mode = config.answer_mode  # a promoted chat model may change it (rag/llm/selection.py)
        self._retriever: HybridRetriever | None = None
        self._lock = threading.Lock()
        self._rare: tuple[object, frozenset[str], frozenset[str]] | None = None  # (index, rare terms, identifiers)
        # Extractive answers are CPU work: more at once than a few per core only time-slices them (and
        # contends for the GIL), and a FIFO keeps the tail of a burst close to its middle.
        self._turns = FairSlots(config.answer_concurrency or 2 * (os.cpu_count() or 1))
        self.pool = None  # rag.pool.AnswerPool once start_processes() started worker processes
        self.intent_model = shipped_model(config.intent_model) if config.intent_model else None
        if config.intent_model and self.intent_model is None:
            log.warning("Message classifier %s missing or outdated (python -m training.intent): rules only", config.intent_model)

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
        """Load index and model and run one query so the first customer does not wait (in the workers, if any)."""
        if self.pool is not None and self.pool.alive:
            self.pool.warm_up()
            return
        self.retriever.search("facture")

    def index_build(self) -> str | None:
        """Name of the index build the answers come from (the workers', if any), None before it is loaded."""
        if self.pool is not None and self.pool.alive:
            return self.pool.index_build
        retriever = self._retriever
        index = getattr(retriever, "index", None)
        return index.path.name if index is not None and hasattr(index, "path") else None

    def start_processes(self, log_level: str = "WARNING", log_format: str = "text") -> int:
        """Answer extractively in ``config.answer_processes`` worker processes (rag/pool.py); how many started.

        The index must be on disk (the workers load it). This process then loads its own index and model
        only if something here needs them (a worker failing, a generative answer, the KB tools)."""
        count = self.config.worker_processes()
        if count == 0 or self.pool is not None:
            return self.pool.alive if self.pool is not None else 0
        from rag.pool import AnswerPool

        pool = AnswerPool(self.config, count, log_level=log_level, log_format=log_format)
        if pool.start():
            self.pool = pool
        else:
            pool.close()
        return pool.alive

    def close(self) -> None:
        """Stop the worker processes, if any."""
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.close()

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
        if answer_mode != "extractive" and self.pool is not None and self._retriever is None:
            # Generated answers are grounded here, not in the workers: load this process' index beside the model.
            threading.Thread(target=lambda: self.retriever, name="index-load", daemon=True).start()

    def reload(self) -> None:
        """Drop the loaded index so the next question uses a fresh build (here and in the workers)."""
        with self._lock:
            self._retriever = None
        if self.pool is not None:
            self.pool.reload()

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
        return last_item(self.stream_answer(question, previous_top_entries, previous_question, history, mode, timeout))

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
        mode = mode or self.answer_mode
        if mode == "extractive" and self.pool is not None:  # another process answers: this one's GIL stays free
            answer = self.pool.answer(question, previous_top_entries, previous_question)
            if answer is not None:
                yield answer
                return
        yield from self._answer_here(question, previous_top_entries, previous_question, history, mode, timeout)

    async def answer_async(
        self,
        question: str,
        previous_top_entries: list[str] | None = None,
        previous_question: str | None = None,
        history: list[tuple[str, str]] | None = None,
    ) -> Answer:
        """``answer`` for a coroutine on the server's event loop (the API's chat turn).

        An extractive answer from the worker processes is awaited without a thread; any other (no
        live worker, a generative mode) is computed in a thread of the server's pool."""
        import anyio.to_thread

        mode = self.answer_mode
        if mode == "extractive" and self.pool is not None:
            answer = await self.pool.answer_async(question, previous_top_entries, previous_question)
            if answer is not None:
                return answer
        here = self._answer_here(question, previous_top_entries, previous_question, history, mode, None)
        return await anyio.to_thread.run_sync(last_item, here)

    def _answer_here(
        self,
        question: str,
        previous_top_entries: list[str] | None,
        previous_question: str | None,
        history: list[tuple[str, str]] | None,
        mode: str,
        timeout: float | None,
    ) -> Iterator[str | Answer]:
        """``stream_answer`` in this process."""
        start = time.perf_counter()
        with self._turns:  # CPU-bound: a few at a time, first come first served
            answer, entries, empathy = self._extractive(question, previous_top_entries, previous_question)
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
        if (model := self.intent_model) is not None:
            analysis = second_opinion(analysis, question, model.predict(question), self.config)
        if analysis.small_talk and not analysis.escalation_reasons:
            text = GREETING_TEXT if analysis.small_talk == "greeting" else THANKS_TEXT
            answer = Answer(text=text, intent="général", confidence=1.0, links=_links("général", [], False))
            return self._finish(answer, start), [], False

        reasons = list(analysis.escalation_reasons)
        if analysis.bare_request:  # "un conseiller svp": nothing to look up, hand over at once
            answer = Answer(text=HANDOFF_TEXT, intent="assistance", confidence=1.0, needs_escalation=True,
                            escalation_reasons=reasons, priority=ticket_priority(analysis, reasons),
                            sentiment=analysis.sentiment, links=_links("assistance", [], True))
            return self._finish(answer, start), [], "mécontentement important" in reasons

        retrieval, used = self._retrieve(retriever, analysis, question, previous_question)
        top = retrieval.top
        confidence = round(used[0].score, 4) if used else 0.0
        if self._out_of_scope(analysis, retrieval, question):
            answer = Answer(text=OUT_OF_SCOPE_TEXT, intent="général", confidence=confidence, out_of_scope=True,
                            sentiment=analysis.sentiment, links=_links("général", [], False))
            return self._finish(answer, start), [], False

        grounded = bool(used) and (confidence >= self.config.min_confidence
                                   or (confidence >= self.config.min_confidence - self.config.exact_term_margin
                                       and self._names_exact_term(question, used[0].entry)))
        if not grounded:
            used = []
        intent = analysis.intent
        if grounded and intent in ("général", "assistance"):
            intent = used[0].entry.category  # KB categories use the intent labels
        if grounded and previous_top_entries is not None:
            repeats = 1 + previous_top_entries.count(used[0].entry.id)
            if repeats >= self.config.repeat_limit and "problème non résolu après plusieurs tentatives" not in reasons:
                reasons.append("problème non résolu après plusieurs tentatives")
        if not grounded:
            reasons.append("confiance de recherche insuffisante")
        escalate = bool(reasons)
        human = "demande explicite d'un conseiller" in reasons

        parts = []
        if "mécontentement important" in reasons:
            parts.append(EMPATHY_TEXT)
        if grounded:
            parts.extend(entry_text(hit.entry, escalate, human) for hit in used)
        elif len(reasons) > 1:  # a human was asked for (or anger, a dispute...) but no topic was found
            parts.append(HANDOFF_TEXT)
        else:
            parts.append(LOW_CONFIDENCE_TEXT)
        if reasons and grounded:
            parts.append(ESCALATION_TEXT)
        used_ids = {hit.entry.id for hit in used}
        runners_up = [h for h in retrieval.hits if h.entry.id not in used_ids] if grounded else []
        answer = Answer(
            text="\n\n".join(parts),
            sources=[Source.of(h, True) for h in used] + [Source.of(h, False) for h in runners_up],
            intent=intent,
            confidence=confidence,
            needs_escalation=escalate,
            escalation_reasons=reasons,
            priority=ticket_priority(analysis, reasons) if escalate else None,
            sentiment=analysis.sentiment,
            links=_links(intent, [u for h in used for u in h.entry.links], escalate),
            top_entry=used[0].entry.id if used else (top.entry.id if top else None),
        )
        context = list(used) + [h for h in runners_up][: max(0, self.config.llm.context_entries - len(used))]
        entries = [h.entry for h in context] if grounded else []
        return self._finish(answer, start), entries, "mécontentement important" in reasons

    def _retrieve(
        self, retriever: HybridRetriever, analysis: Analysis, question: str, previous_question: str | None
    ) -> tuple[Retrieval, list[Hit]]:
        """The retrieval of the message and the hits the answer uses: one, or two for a two-part question
        or a billing dispute (the matching entry and the contestation procedure)."""
        topic = analysis.topic or question
        prefer = tuple(_PREFERRED[r] for r in analysis.escalation_reasons if r in _PREFERRED)
        retrieval = retriever.search(topic, prefer=prefer)
        found: list[Retrieval] = []
        if analysis.extra_topic:  # a fixed query: its vector comes from the embedder's cache
            found = [retrieval, retriever.search(analysis.extra_topic, prefer=prefer)]
        elif (parts := split_question(topic)) and retrieval.top:
            # Two parts BM25 sends to the same entry are one question. Otherwise the part BM25 sends to
            # the entry the whole message found is answered by it; the other part is searched with its
            # own meaning blended into the whole message's (one more embedding, of a short text: ~2 ms
            # with the int8 model) and its own words.
            best = [retriever.lexical_best(part) for part in parts]
            if best[0] != best[1]:
                whole = retriever.embedder.encode_query(topic)  # cached: the whole message's vector
                found = [retrieval if b == retrieval.top.entry.id
                         else retriever.search(p, prefer=prefer, context=topic,
                                               vector=_blend(whole, retriever.embedder.encode_query(p)))
                         for p, b in zip(parts, best, strict=True)]
        if previous_question and is_follow_up(question) and not self._clearly_off_topic(retrieval, question):
            # The new message counts twice so it steers; the previous one supplies the subject. A short message
            # whose nearest labelled message is off topic by a clear margin ("recette des crêpes" after an
            # eSIM question) changed the subject: it is judged alone, not merged with the previous question.
            combined = retriever.search(f"{topic} {topic} {previous_question}", prefer=prefer)
            standalone = {h.entry.id for h in retriever.search(topic, k=10).hits}
            if combined.top and combined.top.entry.id in standalone:
                retrieval = combined
        escalated = bool(analysis.escalation_reasons)
        used = [self._substantial(retrieval, retrieval.top, escalated)] if retrieval.top else []
        tops = [self._substantial(r, self._part_top(r, retrieval), escalated) for r in found if r.top is not None]
        if len(tops) == 2 and tops[0].entry.id != tops[1].entry.id:
            first, second = tops
            if analysis.extra_topic:  # how to contest, then the matching entry (if it really matches)
                used = [second, first] if first.score >= self.config.compose_min_confidence else [second]
            elif min(first.score, second.score) >= self.config.compose_min_confidence:
                used = [first, second]
        elif analysis.extra_topic and tops:
            used = tops[:1]
        if len(used) == 1 and not found:
            used = [self._term_top(retriever, question, topic, prefer, used[0])]
        return retrieval, used

    def _term_top(self, retriever: HybridRetriever, question: str, topic: str, prefer: tuple[str, ...], top: Hit) -> Hit:
        """`top`, unless the message names in capitals an identifier of the KB (MNC, MMSC) that `top`'s answer
        does not write: then the best of the first ten hits whose answer writes it, if it scores within
        `exact_term_rerank` of `top` (a short "c'est quoi le MNC ?" has low, close scores everywhere)."""
        named = {t.lower() for t in _TERM.findall(question)} & self._identifiers()
        if not named or named & _answer_terms(top.entry.answer):
            return top
        for hit in retriever.search(topic, k=10, prefer=prefer).hits:  # the vector comes from the cache
            if named & _answer_terms(hit.entry.answer):
                return hit if hit.score >= top.score - self.config.exact_term_rerank else top
        return top

    def _part_top(self, part: Retrieval, whole: Retrieval) -> Hit:
        """The entry answering one part of a two-part question: its own best hit, unless the entry the whole
        message found is nearly as good for it (within `compose_whole_margin`): the whole message says more."""
        if whole.top is not None and part is not whole:
            for hit in part.hits:
                if hit.entry.id == whole.top.entry.id and hit.score >= part.top.score - self.config.compose_whole_margin:
                    return hit
        return part.top

    def _substantial(self, retrieval: Retrieval, hit: Hit, escalated: bool) -> Hit:
        """`hit`, unless most of its text is a promise this turn cannot keep (an agent's "a ticket was opened"):
        then the next hit that keeps its substance and still clears `min_confidence`."""
        def keeps_substance(h: Hit) -> bool:
            return len(keep_promises_honest(h.entry.answer, escalated)) >= 0.6 * len(h.entry.answer)

        if keeps_substance(hit):
            return hit
        for other in retrieval.hits:
            if other is not hit and other.score >= self.config.min_confidence and keeps_substance(other):
                return other
        return hit

    def _names_exact_term(self, question: str, entry: Entry) -> bool:
        """Whether the question names a technical term (acronym, code) the entry's answer writes and few
        other entries do: such a term identifies the entry better than any similarity score."""
        terms = _question_terms(question)
        if not terms:
            return False
        rare = self._rare_terms()
        return any(term in rare and term in _answer_terms(entry.answer) for term in terms)

    def _rare_terms(self) -> frozenset[str]:
        """Technical terms that appear in the answers of at most 15 % of the KB entries (once per index)."""
        return self._kb_terms()[0]

    def _identifiers(self) -> frozenset[str]:
        """The rare terms the KB only ever writes as identifiers (MNC, MMSC, CSAT), never as a lower-case word
        the way "sim", "mms" or "conso" also are: naming one of them points at the entries that write it."""
        return self._kb_terms()[1]

    def _kb_terms(self) -> tuple[frozenset[str], frozenset[str]]:
        """(rare terms, identifiers) of the current index, computed once per index."""
        index = self.retriever.index
        if self._rare is None or self._rare[0] is not index:
            counts: dict[str, int] = {}
            for entry in index.entries:
                for term in _answer_terms(entry.answer):
                    counts[term] = counts.get(term, 0) + 1
            limit = max(2, int(0.15 * len(index.entries)))
            rare = frozenset(t for t, n in counts.items() if n <= limit)
            words = {w for e in index.entries for w in re.findall(r"\b[a-z]+\b", " ".join([e.title, *e.questions, e.answer]))}
            self._rare = (index, rare, frozenset(t for t in rare if t.isalpha() and t not in words))
        return self._rare[1], self._rare[2]

    def _out_of_scope(self, analysis: Analysis, retrieval: Retrieval, question: str) -> bool:
        """Another company's offer or service, or a question whose words and retrieval both point elsewhere.

        Recognised requests (a human, a cancellation, a complaint...) are in scope unless their nearest labelled
        message belongs to another domain by a clear margin with the classifier agreeing (another company's
        refund). The
        classifier (rag.intent) decides when it is sure, or fairly sure with nothing grounded found
        ("mon réseau LinkedIn", "le mode sombre d'Excel") unless the question names one of the KB's rare
        technical terms or its nearest labelled message (an answered customer question, a KB passage) is in
        scope by the same clear margin. So does the nearest labelled message
        (`scope_examples`) when it is off topic by a clear margin, or by more than a near tie with the classifier
        leaning the same way, unless the question names one of the KB's identifiers (MNC, MMSC: a rare term
        like "sim" also has everyday senses, "sim racing"). Otherwise a word only this service uses
        ("forfait", "APN"...) keeps a question in scope, and so do the classifier and the nearest example
        agreeing that it is in scope. Otherwise the scope score, best fused score + known_weight x share
        of the question's words the KB uses,
        must reach a threshold calibrated on data (`python -m bench.calibrate`); a question with
        everyday domain words ("téléphone", "compte") has its own threshold.
        """
        if analysis.competitor_offer or analysis.other_service:
            return True
        config = self.config
        p = analysis.out_of_scope_probability
        if analysis.escalation_reasons or analysis.porting:  # a request, or keeping one's number with another operator
            # ... about this service, unless its nearest labelled message is another domain's by a clear margin
            # and the classifier agrees ("ma mutuelle rembourse les lunettes ?", "le tour-opérateur a annulé").
            margin = retrieval.scope_margin
            return (not analysis.porting and margin is not None and margin >= config.out_of_scope_example_margin
                    and p is not None and p >= config.intent_out_of_scope_ungrounded)  # fmt: skip
        terms = _question_terms(question)
        own_term = not terms.isdisjoint(self._rare_terms())  # "MCC", "APN": this service's words
        margin = retrieval.scope_margin
        # The classifier's view, even with domain words, unless the nearest labelled message or KB passage is in
        # scope by a clear margin (a long story about moving house whose question is the network).
        if p is not None and (margin is None or -margin < config.out_of_scope_example_margin):
            top = retrieval.top.score if retrieval.top else 0.0
            if p >= config.intent_out_of_scope or (
                p >= config.intent_out_of_scope_ungrounded and top < config.min_confidence and not own_term
            ):
                return True
        identifier = not terms.isdisjoint(self._identifiers())  # "MCC", "MMSC", never "sim"
        if self._clearly_off_topic(retrieval, question) or (
            margin is not None and not identifier and margin >= config.out_of_scope_example_tie
            and p is not None and p >= config.out_of_scope_example_agreement
        ):
            return True  # its nearest labelled neighbour is off topic ("mon passeport", "ma carte Vitale")
        if analysis.domain == "strong" or names_domain(retrieval.tokens):
            return False
        if p is not None and margin is not None and p < config.in_scope_agreement and -margin >= config.in_scope_example_margin:
            return False  # classifier and nearest example both say in scope ("un agent le prend en charge en combien de temps")
        score = (retrieval.top.score if retrieval.top else 0.0) + config.out_of_scope_known_weight * retrieval.raw_known_ratio
        threshold = config.out_of_scope_weak_confidence if analysis.domain == "weak" else config.out_of_scope_confidence
        return score < threshold

    def _clearly_off_topic(self, retrieval: Retrieval, question: str) -> bool:
        """Whether the message's nearest labelled message is off topic by a clear margin and it names none of
        the KB's identifiers (MNC, MMSC: a rare term like "sim" also has everyday senses, "sim racing")."""
        margin = retrieval.scope_margin
        return (margin is not None and margin >= self.config.out_of_scope_example_margin
                and _question_terms(question).isdisjoint(self._identifiers()))

    @staticmethod
    def _finish(answer: Answer, start: float) -> Answer:
        answer.latency_ms = round((time.perf_counter() - start) * 1000, 2)
        return answer
