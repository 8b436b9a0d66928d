"""Hybrid retrieval: dense cosine (FAISS) fused with saturated BM25, grouped by KB entry.

On top of the fusion, "facets" keep close entries apart: an entry whose phrasings are all about
a situation the question does not mention (abroad, the Forfait 2€, the 5G network, the first
bill, after a cancellation...) loses a little, one whose situation the question names gains a little
(four times as much for the situations that are requests of their own, see _REQUEST_FACETS). "Data
abroad with the 5G plan" then stops answering "how much data in the 5G plan".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from rag.embeddings import Embedder
from rag.index import KnowledgeIndex
from rag.sources import Entry
from rag.text import COUNTRIES, analyze, fold
from settings import RagConfig

FACETS: dict[str, re.Pattern] = {
    "abroad": re.compile(r"\b(?:etranger|europe|europeens?|dom|roaming|itinerance|hors de france|"
                         + "|".join(COUNTRIES.split()) + r")\b"),
    "forfait_2e": re.compile(r"\bforfaits? (?:a )?(?:2 ?(?:€|e|eur|euros?)(?![a-z0-9])|deux euros)"),
    # 5G the network (not "Forfait Free 5G", the plan's name): "je ne capte pas la 5G" vs "toujours pas de 4G".
    "5g_network": re.compile(r"(?<!forfait )(?<!forfait free )(?<!free )(?<!offre )\b5g\b"),
    "first_bill": re.compile(r"\bpremier(?:e)? (?:facture|mois)\b|\bfrais d'?\s?activation\b"),
    # After leaving: a cancellation, the end of the contract, a number transfer done, the old SIM.
    "after_cancel": re.compile(r"\b(?:apres|une fois) (?:la |ma |une |avoir |l'?\s?)?resil"
                               r"|\b(?:apres|une fois) (?:la |le |ma |mon |l'?\s?)?(?:transfert|portabilite|depart)\b"
                               r"|\b(?:apres|une fois) (?:la )?fin (?:de |du |d'?\s?)(?:mon |ma |l'?\s?)?"
                               r"(?:abonnement|contrat|forfait|ligne)\b"
                               r"|\bune fois (?:que )?(?:je suis |j'?\s?ai |je )?(?:parti|partie|passee?|change)\b"
                               r"|\b(?:ancienne|vieille) (?:carte )?(?:sim|puce)\b"),
    # What becomes of the SIM card itself: throwing it away, cutting it, sending it back ("je peux jeter ma SIM Free
    # tout de suite ?", "je fais quoi de ma puce ?"); leaving for another operator is then the context, not the subject.
    "sim_fate": re.compile(r"\b(?:jet\w*|decoup\w*|coup(?:er|ez)|detrui\w*|renvo\w*|retourn\w*|rend(?:re|s|ez)|recycl\w*|"
                           r"debarrass\w*|fai\w*(?: quoi)? de)\b[^.?!]{0,30}\b(?:e?sim|puce)\b"
                           r"|\b(?:e?sim|puce)\b[^.?!]{0,30}\b(?:a (?:la )?poubelle|(?:en )?fai\w* quoi|jet\w*|decoup\w*|detrui\w*|renvo\w*|retourn\w*|recycl\w*)\b"),
    # Being warned before the allowance runs out ("vous prévenez quand j'arrive au bout de mon enveloppe ?").
    "usage_alert": re.compile(r"\b(?:previen\w*|prevenu\w*|prevenez|prevenir|avert\w*|alertes?|notifi\w*)\b[^.?!]{0,60}"
                              r"\b(?:conso\w*|limite|bout|fin|epuis\w*|enveloppe|data|forfait|gigas?|go|depass\w*)\b"),
    # Being bound to the plan: "je suis engagé combien de temps ?", penalties for leaving early ("engagements de
    # service", the service's targets, are not this).
    "commitment": re.compile(r"\bengagee?s?\b|\bengagements?\b(?! de (?:service|qualite))|\bpenalites?\b|\bduree minimale\b"),
    # A month billed in part: leaving or changing plans mid-month ("je paie le mois entier ?", "si je pars le 10 du
    # mois"); a date alone only says when something happened ("depuis le 20 du mois", "on est le 20 du mois").
    "partial_month": re.compile(r"\bmois (?:entier|complet|plein)\b|\b(?:en cours|en milieu|au milieu|milieu) de mois\b"
                                r"|\bprorata\b|\bfacture partielle\b|\ben entier\b|\btout le mois\b"
                                r"|\b(?:pars|part\w*|resili\w*|chang\w*|quitt\w*|arret\w*|souscri\w*|pass\w*|bascul\w*)\b"
                                r"[^.?!,]{0,30}\ble \d{1,2} du mois\b"),
    # Moving from one plan to the other ("passer au forfait 5G", "redescendre au 2€", "changement de forfait",
    # "modifier mon offre", "prendre le 5G à la place du 2€"); "forfai" as typed in a hurry.
    "plan_change": re.compile(r"\b(?:chang\w*|modifi\w*|pass(?:er|e|ez|age)|redescen\w*|reven\w*|retourn\w*|bascul\w*"
                              r"|migr\w*|opter)\b(?: \w+){0,3} (?:de |d'\s?|du |au |a |vers (?:le )?|sur (?:le )?|pour (?:le )?)?"
                              r"(?:forfai\w*|offre|abonnement)\b"
                              r"|\bpass(?:er|e|ez|age) au (?:forfait )?(?:free )?(?:5g|2 ?(?:€|e|eur|euros?)(?![a-z0-9]))"
                              r"|\ba la place d[ue] (?:forfait )?(?:free )?(?:5g|2 ?(?:€|e|eur|euros?)(?![a-z0-9]))"
                              r"|\b(?:nouveau|autre) forfait\b|\bnouvelle offre\b"
                              r"|\b(?:un|une|d'?\s?un|d'?\s?une) (?:forfait|offre|formule) (?:moins chere?|plus petite?)\b"),
    # The service's own targets: how fast the assistant answers, the share of requests it settles alone, the
    # satisfaction aimed at ("votre robot met combien de temps à répondre ?", "quelle part des demandes sans humain ?").
    "service_targets": re.compile(r"\bengagements? de (?:qualite|service)\b|\bobjectifs? (?:du|de|de la) (?:service|qualite)\b"
                                  r"|\btaux de (?:satisfaction|resolution|reussite)\b|\b(?:pourcentage|proportion|quelle part|part des)"
                                  r"\b[^.?!]{0,30}\b(?:demandes|questions|requetes|problemes)\b"
                                  r"|\b(?:assistant|bot|chatbot|robot)\b[^.?!]{0,40}\brepond\w*\b[^.?!]{0,20}\b(?:vite|rapide\w*|combien|temps|delai)"
                                  r"|\b(?:assistant|bot|chatbot|robot)\b[^.?!]{0,40}\b(?:combien de temps|vite|rapide\w*|delai)\b[^.?!]{0,20}\brepond"
                                  r"|\b(?:combien de temps|en combien|delai|vite|rapide\w*)\b[^.?!]{0,40}\b(?:assistant|bot|chatbot|robot)\b"
                                  r"[^.?!]{0,30}\brepond|\b(?:temps|delai) de reponse (?:du |de l'?\s?)(?:assistant|bot|chatbot|robot)\b"),
}


# Some situations are requests of their own that entries sharing their words outrank: a plan change ("passer au
# 5G, ça coûte combien ?" is not the price entry), a month billed in part ("le mois où je résilie, je paie le mois
# entier ?" is not how to cancel), leaving, being bound to the plan, usage alerts, the service's own targets. When the
# question names one, the entries about it gain four bonuses; places and plans (abroad, Forfait 2€, 5G, first bill)
# are context and gain one.
_REQUEST_FACETS = ("plan_change", "partial_month", "after_cancel", "commitment", "usage_alert", "service_targets", "sim_fate")
_FACET_WEIGHT = np.array([4.0 if name in _REQUEST_FACETS else 1.0 for name in FACETS], dtype=np.float32)


# Where a thing was bought or comes from: a phone "acheté à l'étranger" or "ramené d'Espagne" is used here.
_ORIGIN = re.compile(r"\b(?:achetee?s?|importee?s?|ramenee?s?|venant|provenant) (?:a l'|en |d'|de l'|du |des )\s?\w+")


def facets_of(text: str) -> set[str]:
    """Facets named in a text (folded inside), the places things come from left out."""
    folded = _ORIGIN.sub(" ", fold(text).replace("’", "'"))
    return {name for name, pattern in FACETS.items() if pattern.search(folded)}


def entry_facets(entry: Entry) -> set[str]:
    """Facets that at least half of an entry's phrasings (title and questions) name."""
    phrasings = list(dict.fromkeys([entry.title, *entry.questions]))
    counts: dict[str, int] = {}
    for phrasing in phrasings:
        for name in facets_of(phrasing):
            counts[name] = counts.get(name, 0) + 1
    return {name for name, n in counts.items() if 2 * n >= len(phrasings)}


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
    known_ratio: float  # share of the query's words found in the KB vocabulary (after typo correction)
    raw_known_ratio: float = 1.0  # the same before correction: words the KB never uses lower it
    scope_margin: float | None = None  # nearest out-of-scope example minus nearest in-scope one (KnowledgeIndex.scope_margin)

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
        names = list(FACETS)
        # (entries, facets) 0/1 matrix: which entry is about which situation.
        self._facets = np.array([[name in entry_facets(e) for name in names] for e in index.entries],
                                dtype=np.float32).reshape(len(index.entries), len(names))
        self._categories = np.array([e.category for e in index.entries], dtype=object)
        self._kind_malus = config.conversation_penalty * np.array(
            [e.kind == "conversation" for e in index.entries], dtype=np.float32)

    def dense_scores(self, query: str, vector: np.ndarray | None = None) -> np.ndarray:
        """Best cosine per entry over its views (questions and answer chunks)."""
        vector = self.embedder.encode_query(query) if vector is None else vector
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

    def facet_adjustment(self, query: str) -> np.ndarray:
        """Per-entry bonus for situations both the query and the entry name, malus for those only one names."""
        named = facets_of(query)
        wanted = np.array([name in named for name in FACETS], dtype=np.float32)
        shared = self._facets @ (wanted * _FACET_WEIGHT)
        entry_only = self._facets @ (1.0 - wanted)
        query_only = (1.0 - self._facets) @ wanted
        config = self.config
        return config.facet_bonus * shared - config.facet_penalty * entry_only - config.facet_query_penalty * query_only

    def search(self, query: str, k: int | None = None, prefer: tuple[str, ...] = (),
               vector: np.ndarray | None = None, context: str | None = None) -> Retrieval:
        """Rank entries for a query; k defaults to the configured top_k.

        prefer: KB categories the rules already identified (a cancellation request prefers
        "résiliation" entries), worth `category_bonus`; vector: the query's embedding when the
        caller computed it already; context: the whole message when `query` is one
        part of it, whose situations (abroad, Forfait 2€...) then apply to the part.
        """
        k = k or self.config.top_k
        raw_tokens = analyze(query)
        tokens = self.index.corrector.correct(raw_tokens)
        content = [t for t in tokens if not t.startswith("grp_")]
        known_ratio = (sum(t in self.index.vocab for t in content) / len(content)) if content else 0.0
        raw = [t for t in raw_tokens if not t.startswith("grp_")]
        raw_known_ratio = (sum(t in self.index.vocab for t in raw) / len(raw)) if raw else 0.0
        vector = self.embedder.encode_query(query) if vector is None else vector
        dense = self.dense_scores(query, vector)
        bm25 = self.lexical_scores(tokens)
        lexical = bm25 / (bm25 + self.config.lexical_saturation)
        fused = self.config.dense_weight * dense + self.config.lexical_weight * lexical
        fused = fused + self.facet_adjustment(query if context is None else f"{query} {context}") - self._kind_malus
        if prefer:
            fused = fused + self.config.category_bonus * np.isin(self._categories, prefer)
        fused = np.clip(fused, 0.0, 1.0)
        order = np.argsort(-fused)[:k]
        hits = [
            Hit(self.index.entries[i], float(fused[i]), float(dense[i]), float(lexical[i]))
            for i in order
            if fused[i] > 0
        ]
        scope_margin = self.index.scope_margin(vector, float(dense.max(initial=0.0)))
        return Retrieval(hits, tokens, known_ratio, raw_known_ratio, scope_margin)

    def lexical_best(self, query: str) -> str | None:
        """Id of the entry BM25 alone ranks first for `query` (no embedding: a cheap first look)."""
        bm25 = self.lexical_scores(self.index.corrector.correct(analyze(query)))
        best = int(np.argmax(bm25)) if len(bm25) else 0
        return self.index.entries[best].id if len(bm25) and bm25[best] > 0 else None
