"""French text analysis for lexical retrieval: accent folding, stop words, stemming, synonyms.

Customers write without accents, with typos and with their own vocabulary ("gigas" for data,
"RIB" for payment method), so documents and queries go through the same analyzer, which maps
synonyms to shared group tokens and, for queries, corrects unknown words against the KB vocabulary.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_FRENCH

ANALYZER_VERSION = "12"  # bump when tokens change: every index is rebuilt

_EXTRA_STOPWORDS = {
    "bonjour", "bonsoir", "salut", "merci", "svp", "stp", "plait", "comment", "quoi", "quel",
    "quelle", "quels", "quelles", "est", "ce", "cest", "faire", "fait", "faut", "peux", "peut",
    "puis", "pouvez", "pourriez", "voudrais", "veux", "aimerais", "souhaite", "souhaiterais",
    "besoin", "savoir", "dire", "alors", "donc", "aussi", "tres", "bien", "si", "cela", "ca",
    "chez", "etre", "avoir", "jai", "jsuis", "mais", "hello", "oui", "non", "bjr", "slt", "mci",
    "il", "y", "a", "ya", "quand", "ou", "dois", "doit", "mes", "mon", "ma",
}
STOPWORDS = {unicodedata.normalize("NFKD", w).encode("ascii", "ignore").decode() for w in STOPWORDS_FRENCH} | _EXTRA_STOPWORDS

# Phrases rewritten to a single token before tokenization (on folded, lower-cased text).
_PHRASES = [
    # Shorthand typed on a phone ("chgt de cb", "lespace abonne"), first: the phrases below see the words.
    (r"\bchgts?\b", "changement"),
    (r"\blespace\b", "l'espace"),
    (r"\bcartes? bancaires?\b", "cb"),
    (r"\b(?:moyens?|modes?) de (?:paiement|payement|reglement)\b", "moyenpaiement"),
    (r"\bespace abonnes?\b", "espaceabonne"),
    (r"\bcarte sim\b", "sim"),
    (r"\bmode avion\b", "modeavion"),
    (r"\b(?:garder|conserver|porter|transferer|recuperer) (?:mon |son |le |ma )?(?:numero|ligne|num|0[67])\b", "portabilite"),
    (r"\bchanger d'?\s?operateur\b", "portabilite"),
    (r"\btransfert (?:de|du) (?:mon |ma )?(?:numero|ligne)\b", "portabilite"),
    (r"\bmettre fin a\b", "resilier"),
    (r"\bferm(?:er|ez) (?:ma|mon|la|le) (?:ligne|compte|forfait|abonnement)\b", "resilier forfait"),
    (r"\bespace (?:perso|client|personnel)\b", "espaceabonne"),
    (r"\bhors forfait\b", "horsforfait"),
    (r"\bsuivi (?:de )?conso(?:mmation)?\b", "suiviconso"),
    (r"\bdomaine? outre[- ]mer\b", "dom"),
    (r"\bpas de (?:reseau|signal)\b", "reseau"),
    # Android names the APN "point d'accès" ("noms des points d'accès"); the Wi-Fi hotspot is another thing.
    (r"\bpoints? d'?\s?acces\b(?! (?:mobile|wifi|wi-fi|personnel|sans fil))", "apn"),
    # Compound words written in several ways ("Wi-Fi", "wi fi", "wifi"; "multi-SIM", "multisim").
    (r"\bwi[- ]?fi\b", "wifi"),
    (r"\bmulti[- ]?sims?\b", "multisim"),
    (r"\be[- ]sim\b", "esim"),
    # No trailing \b: after "€" (a non-word character) it would need a following letter, so "2€" never matched.
    (r"(\d+(?:[.,]\d+)?)\s?(?:€|e|eur|euros?)(?![a-z0-9])", r"\1 euro"),
]
_PHRASES_RE = [(re.compile(p), r) for p, r in _PHRASES]

# Places abroad customers name instead of "à l'étranger" (the KB says "Europe et DOM").
COUNTRIES = (
    "allemagne autriche belgique bulgarie chypre croatie danemark espagne estonie finlande grece hongrie irlande "
    "islande italie lettonie liechtenstein lituanie luxembourg malte norvege hollande pologne portugal roumanie "
    "slovaquie slovenie suede tchequie suisse angleterre ecosse guadeloupe martinique guyane reunion mayotte "
    "maroc tunisie algerie turquie usa canada japon thailande bresil mexique chine inde "
    # and the cities they name most ("je pars à Rome", "en week-end à Londres")
    "rome milan venise florence naples madrid barcelone seville lisbonne porto londres dublin edimbourg berlin munich "
    "bruxelles amsterdam prague budapest varsovie athenes geneve lausanne copenhague stockholm oslo "
    "marrakech casablanca tunis alger istanbul"
)

# Synonym groups: every member (after folding) also emits the group token.
_SYNONYMS = {
    "grp_data": "data donnees donnee giga gigas go mo internet 4g 5g connexion",
    "grp_paiement": "rib iban prelevement prelevements cb moyenpaiement paiement payer carte",
    "grp_resil": "resilier resiliation resilie arreter quitter annuler partir",
    "grp_porta": "portabilite rio operateur",
    "grp_roaming": "roaming itinerance etranger europe voyage vacances dom sejour pays " + COUNTRIES,
    "grp_reseau": "reseau signal barre barres couverture capte capter reception",
    "grp_lent": "lent lente lenteur debit rame ramer",
    "grp_humain": "conseiller conseillere humain agent quelqu personne",
    "grp_forfait": "forfait abonnement offre",
    "grp_conso": "conso consommation suiviconso consommations",
    "grp_sms": "sms texto textos mms",
    "grp_facture": "facture factures facturation",
    "grp_rembours": "rembourser remboursement rembourse remboursee",
    "grp_plainte": "reclamation plainte litige contester contestation",
    "grp_sim": "sim puce esim",
    "grp_contact": "contacter contact joindre ecrire ecrivez",
    "grp_recharge": "recharge recharges recharger racheter rajouter acheter",
}
_SYNONYM_OF = {w: g for g, words in _SYNONYMS.items() for w in words.split()}

_TOKEN_RE = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)?")
_STEMMER = Stemmer.Stemmer("french")


def fold(text: str) -> str:
    """Lower-case and strip accents ("Résiliation" -> "resiliation")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def compact(text: str) -> str:
    """Fold and drop every non-alphanumeric character: the form used to check facts in answers."""
    return re.sub(r"[^a-z0-9]", "", fold(text))


def words(text: str) -> list[str]:
    """Folded word tokens, with known phrases merged into single tokens."""
    folded = fold(text).replace("’", "'")
    for pattern, repl in _PHRASES_RE:
        folded = pattern.sub(repl, folded)
    folded = re.sub(r"\b([a-z])'", r"\1 ", folded)
    return _TOKEN_RE.findall(folded)


@lru_cache(maxsize=20000)
def stem(word: str) -> str:
    """Snowball French stem of a folded word."""
    return _STEMMER.stemWord(word)


def analyze(text: str) -> list[str]:
    """Tokens for BM25: folded, stop words removed, stemmed, plus synonym group tokens."""
    out: list[str] = []
    for w in words(text):
        if w in STOPWORDS or (len(w) == 1 and not w.isdigit()):
            continue
        out.append(stem(w))
        group = _SYNONYM_OF.get(w)
        if group:
            out.append(group)
    return out


class QueryCorrector:
    """Maps unknown query tokens to the closest KB token (typos such as "facure" -> "factur")."""

    def __init__(self, vocabulary: Iterable[str], min_similarity: float = 80.0) -> None:
        self.vocabulary = sorted({v for v in vocabulary if not v.startswith("grp_")})
        self._known = set(self.vocabulary)
        self.min_similarity = min_similarity

    def correct(self, tokens: list[str]) -> list[str]:
        """Return tokens with unknown ones (4+ letters) replaced by their best close match."""
        from rapidfuzz import fuzz, process

        out = []
        for tok in tokens:
            if tok in self._known or tok.startswith("grp_") or len(tok) < 4 or tok.isdigit():
                out.append(tok)
                continue
            match = process.extractOne(tok, self.vocabulary, scorer=fuzz.ratio, score_cutoff=self.min_similarity)
            out.append(match[0] if match else tok)
        return out
