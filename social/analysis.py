"""Explainable scoring of a Mastodon post: relevance, complaint score, urgency, French reasons.

Pure functions, no I/O. Post HTML is turned into text with the stdlib ``html.parser`` (never
regexes), then rules run on folded text; negative sentiment reuses ``rag.nlu.sentiment_score``
so the chat and the social monitor judge anger the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from rag.nlu import NEGATIVE_EMOJI, REFUND, URGENT_DOWN, sentiment_score
from rag.text import fold

BLOCK_TAGS = {"p", "br", "div", "li", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "tr"}
SKIPPED_TAGS = {"script", "style", "template"}

# Complaint vocabulary (folded text), each with the French label shown to agents.
COMPLAINT_TERMS: dict[str, re.Pattern] = {
    "panne": re.compile(r"\bpannes?\b|\bcoupure|\bcoupee?s?\b|\bhs\b|\bhors service\b"),
    "réseau absent": re.compile(
        r"\bplus de (?:reseau|reseaux|signal|connexion|internet|4g|5g|data)\b|\bpas de (?:reseau|signal)\b|\bne capte\b"
    ),
    "ne fonctionne pas": re.compile(
        r"\bne (?:marche|fonctionne) (?:pas|plus)\b|\bmarche pas\b|\bfonctionne pas\b|\bimpossible\b"
    ),
    "facturation contestée": re.compile(
        r"\bfactur\w* (?:deux|2) fois\b|\bpreleve\w* (?:deux|2) fois\b|\btrop (?:paye|preleve|facture)\b|\berreur de factur|\bsurfactur"
    ),
    "remboursement": re.compile(r"\brembours"),
    "attente": re.compile(
        r"\btoujours pas\b|\btoujours rien\b|\bdepuis (?:\d+|deux|trois|quatre|cinq|plusieurs) (?:jours|semaines|heures)\b|\bdepuis une semaine\b|\bsans reponse\b|\bpersonne ne repond\b|\binjoignable\b"
    ),
    "réclamation": re.compile(r"\breclamation\b|\bplainte\b|\blitige\b|\bmediateur\b"),
    "résiliation": re.compile(
        r"\bresilie|\bresilier\b|\bje (?:quitte|vais quitter) free\b|\bchanger d'?\s?operateur\b"
    ),
    "colère": re.compile(
        r"\bscandal|\barnaque|\binadmissible|\binacceptable|\bhonte|\bmarre\b|\bras le bol\b|\bnul(?:le|s)?\b|\bescro|\bvoleurs?\b"
    ),
}
OUTAGE_DAYS = re.compile(r"\bdepuis (?:(\d+)|deux|trois|quatre|cinq|plusieurs) jours\b|\bdepuis une semaine\b")
BANGS = re.compile(r"!{2,}")


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment; block tags become line breaks, scripts are dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED_TAGS:
            self._skip += 1
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str | None) -> str:
    """Plain text of a status' HTML content: entities decoded, tags removed, whitespace tidied."""
    if not html:
        return ""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = ("".join(parser.parts)).splitlines()
    cleaned = [" ".join(line.split()) for line in lines]
    return "\n".join(line for line in cleaned if line)


@dataclass
class PostAnalysis:
    """What the rules concluded about one post, with the reasons an agent can read."""

    text: str
    relevant: bool
    is_complaint: bool
    score: float
    urgency: str | None
    reasons: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """All reasons on one line, as stored in ``mastodon_posts.reason``."""
        return " ; ".join(self.reasons)


def relevance(
    text: str,
    tags: list[str],
    mentions: list[str],
    hashtags: list[str],
    keywords: list[str],
    own_acct: str | None = None,
) -> list[str]:
    """Reasons that make a post relevant (followed hashtag, mention of our account, keyword); empty if none."""
    reasons = []
    followed = {t.lower() for t in hashtags}
    matched = [t for t in tags if t.lower() in followed]
    if matched:
        reasons.append("Hashtag suivi : " + ", ".join(f"#{t}" for t in sorted(set(matched), key=str.lower)))
    if own_acct and any(m.lower() == own_acct.lower() for m in mentions):
        reasons.append(f"Mention du compte @{own_acct}")
    folded = fold(text)
    hits = [k for k in keywords if fold(k) in folded]
    if hits:
        reasons.append("Mot-clé : " + ", ".join(hits))
    return reasons


def complaint_score(text: str) -> tuple[float, list[str]]:
    """Complaint score in [0, 1] and its French explanations."""
    folded = fold(text)
    reasons = []
    terms = [label for label, pattern in COMPLAINT_TERMS.items() if pattern.search(folded)]
    keyword_part = min(0.65, 0.35 + 0.15 * (len(terms) - 1)) if terms else 0.0
    if terms:
        reasons.append("Mots de plainte : " + ", ".join(terms))
    emojis = NEGATIVE_EMOJI.findall(text)
    if emojis:
        reasons.append(f"Émojis négatifs ({len(emojis)}) : {''.join(emojis)}")
    bangs = max((len(m) for m in BANGS.findall(text)), default=0)
    if bangs:
        reasons.append(f"Ponctuation insistante ({'!' * bangs})")
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) > 0.6:
        reasons.append("Message écrit en majuscules")
    sentiment = sentiment_score(text)
    if sentiment:
        reasons.append(f"Sentiment négatif {sentiment:.2f}")
    return round(min(1.0, keyword_part + sentiment), 3), reasons


def urgency_of(text: str, score: float) -> tuple[str, str]:
    """Urgency LOW / MEDIUM / HIGH of a complaint and why."""
    folded = fold(text)
    if URGENT_DOWN.search(folded):
        return "HIGH", "Urgence haute : service coupé ou urgence signalée"
    days = OUTAGE_DAYS.search(folded)
    if days and (days.group(1) is None or int(days.group(1)) >= 2):
        return "HIGH", "Urgence haute : problème qui dure depuis plusieurs jours"
    if REFUND.search(folded) and score >= 0.6:
        return "HIGH", "Urgence haute : litige financier et forte colère"
    if score >= 0.8:
        return "HIGH", f"Urgence haute : score de plainte très élevé ({score:.2f})"
    if score >= 0.55 or REFUND.search(folded) or COMPLAINT_TERMS["panne"].search(folded):
        return "MEDIUM", "Urgence moyenne : panne, litige ou mécontentement marqué"
    return "LOW", "Urgence basse : mécontentement sans blocage signalé"


def analyze_post(
    html: str,
    *,
    tags: list[str],
    mentions: list[str],
    hashtags: list[str],
    keywords: list[str],
    own_acct: str | None = None,
    threshold: float = 0.35,
) -> PostAnalysis:
    """Score one post; ``tags`` and ``mentions`` come from the status entity (names and accts)."""
    text = html_to_text(html)
    reasons = relevance(text, tags, mentions, hashtags, keywords, own_acct)
    relevant = bool(reasons)
    if not relevant:
        reasons = ["Non pertinent : aucun hashtag suivi, mention ou mot-clé"]
    score, signals = complaint_score(text)
    reasons += signals
    is_complaint = relevant and score >= threshold
    urgency = None
    if is_complaint:
        reasons.append(f"Réclamation détectée (score {score:.2f} ≥ seuil {threshold:.2f})")
        urgency, why = urgency_of(text, score)
        reasons.append(why)
    elif relevant:
        reasons.append(f"Pas une réclamation (score {score:.2f} < seuil {threshold:.2f})")
    return PostAnalysis(
        text=text, relevant=relevant, is_complaint=is_complaint, score=score, urgency=urgency, reasons=reasons
    )
