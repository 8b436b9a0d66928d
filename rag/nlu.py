"""Rule-based understanding of a customer message: intent, sentiment, escalation triggers, scope.

Rules run on folded text (lower case, no accents), so "RÉSILIER", "resilier" and "résilier"
behave the same. They are deliberately explicit: each decision can be explained to an agent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.text import fold

INTENTS = ("facturation", "technique", "forfait", "résiliation", "réclamation", "activation", "assistance", "général")
TICKET_CATEGORIES = ("facturation", "technique", "forfait", "résiliation", "réclamation", "général")


def _re(*patterns: str) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


INTENT_RULES: dict[str, re.Pattern] = {
    "résiliation": _re(r"\bresili", r"\bquitter free\b", r"\barreter (?:mon |ma |le |la )?(?:forfait|abonnement|ligne)",
                       r"\bportabilite\b", r"\bcode rio\b", r"\brio\b", r"changer d'?\s?operateur"),
    "réclamation": _re(r"\breclamation", r"\bplainte\b", r"\blitige\b", r"\bmediateur\b", r"\brembours"),
    "facturation": _re(r"\bfactur", r"\bprelev", r"\bpaiement\b", r"\brib\b", r"\biban\b", r"\bmontant\b",
                       r"\bdebite", r"\bcarte bancaire\b", r"\bpayer\b", r"\bpaye\b"),
    "technique": _re(r"\breseau\b", r"\bsignal\b", r"\bapn\b", r"\bmms\b", r"\bcouverture\b", r"\bconnexion\b",
                     r"\blent", r"\bbarres?\b", r"\bne capte", r"\bpanne\b", r"\bbug", r"\b5g\b", r"\b4g\b"),
    "forfait": _re(r"\bforfait\b", r"\boptions?\b", r"\bconso", r"\betranger\b", r"\broaming\b", r"\bitinerance\b",
                   r"\brecharge", r"\bmulti-?sim\b", r"\bgigas?\b", r"\bdata\b", r"\bhors forfait\b"),
    "activation": _re(r"\bactiv", r"\bnouvelle (?:carte )?sim\b", r"\bmise en service\b", r"\bcarte sim recue\b"),
    "assistance": _re(r"\bconseill", r"\bhumain\b", r"\bcontacter\b", r"\bjoindre\b", r"\bticket\b", r"\bservice client\b"),
}

HUMAN_REQUEST = _re(
    r"\b(?:parler|discuter|echanger|joindre|contacter|avoir|veux|voudrais|souhaite|besoin d'?\s?|pass(?:er|ez)(?:-| )?moi|"
    r"mett(?:re|ez)(?:-| )?moi en (?:relation|contact)|en relation)\b"
    r"[^.?!]{0,30}\b(?:conseill\w*|humain|agent|operat(?:eur|rice)|vraie? personne|quelqu'?\s?un|technicien|service client)",
    r"\bmett(?:re|ez)(?:-| )?moi en (?:relation|contact)\b",
    r"\bme pass(?:er|ez)\b[^.?!]{0,20}\b(?:conseill\w*|humain|agent|quelqu'?\s?un|responsable)",
    r"\b(?:une personne|un humain|quelqu'?\s?un|un conseiller) (?:s'?en occupe|me rappelle|me reponde)",
    r"\b(?:un|une) (?:vrai|vraie) (?:personne|humain)\b",
    r"^\W*(?:un |une )?(?:conseill\w*|humain|agent)(?: humain)?\W*(?:svp|stp|s'?il vous plait|$)",
    r"\betre rappele",
    r"\bpas (?:a |avec )?un (?:robot|bot)\b",
)
CANCEL_TERM = _re(r"\bresili", r"\bquitter free\b", r"\barret(?:er|ez) (?:mon |ma |le |la )?(?:forfait|abonnement|ligne)",
                  r"\bmettre fin a (?:mon|ma)", r"\bferm(?:er|ez) (?:ma|mon|la|le) (?:ligne|compte|forfait|abonnement)")
CANCEL_WANT = _re(r"\bje (?:veux|voudrais|souhaite|souhaiterais|vais|compte|desire)\b", r"\bj'?\s?(?:aimerais|ai decide)",
                  r"\bveux\b", r"\bdemande de resiliation\b", r"\bcomment (?:je )?(?:peux |puis-je )?resili",
                  r"\bresiliez", r"\bfermez\b", r"\barretez\b", r"\bresilier mon", r"^\W*resili\w*\W*$")
COMPLAINT = _re(r"\b(?:depos\w*|fai\w*|port\w*|ouvr\w*|envo\w*|formul\w*|lanc\w*)\b[^.?!]{0,20}\b(?:reclamation|plainte)",
                r"\bje (?:porte|vais porter) plainte", r"\blitige\b", r"\bmediateur\b", r"\breclamation officielle",
                r"\bplainte\b")
MONEY_DISPUTE = _re(r"\brembours", r"\bpreleve\w* (?:deux|2) fois", r"\bdouble prelevement", r"\btrop (?:paye|preleve|facture)",
                    r"\bfactur\w* (?:deux|2) fois", r"\berreur de factur", r"(?<!si )\bje conteste\b", r"\bvol(?:e|er)? (?:mon|de l'?)\s?argent",
                    r"\bdedommag", r"\bgeste commercial")
URGENT_DOWN = _re(r"\bplus (?:aucun|rien)\b[^.?!]{0,25}\b(?:service|reseau|ligne|marche|fonctionne)",
                  r"\bappeler les urgences\b", r"\burgen(?:t|ce)\b", r"\bligne (?:coupee|bloquee|suspendue)")
INSULTS = _re(r"\bescro", r"\bvoleurs?\b", r"\bincompeten", r"\bconnard", r"\bdebiles?\b", r"\bbande d", r"\bmerde",
               r"\bputain", r"\bfoutez", r"\bnul(?:le|s)\b", r"\bc'?est du vol\b", r"\bcharlots?\b", r"\bclowns?\b",
               r"\bguignols?\b", r"\bservez a rien\b", r"\bbras casses\b")
NEGATIVE_WORDS = _re(
    r"\bnul(?:le|s)?\b", r"\bhonte", r"\bscandal", r"\barnaque", r"\bescro", r"\bvoleurs?\b", r"\binadmissible",
    r"\binacceptable", r"\bmarre\b", r"\bras le bol\b", r"\bcolere\b", r"\bfurieu", r"\benerve", r"\bdegoute",
    r"\bpourri", r"\bcatastroph", r"\blamentable", r"\bincompeten", r"\bincapables?\b", r"\bn'?importe quoi\b",
    r"\bridicule", r"\bmerde", r"\bputain", r"\bbordel", r"\bconnard", r"\bfoutez", r"\bdebiles?\b", r"\bminable",
    r"\bhonteu", r"\bjamais vu ca\b", r"\bpire\b", r"\bdeplorable", r"\bfoutage",
)
NEGATIVE_EMOJI = re.compile("[\U0001F620\U0001F621\U0001F624\U0001F92C\U0001F44E\U0001F4A9\U0001F62D\U0001F61E\U0001F612]")
DOMAIN = _re(
    r"\bforfait", r"\bfactur", r"\bsim\b", r"\besim\b", r"\breseau", r"\bfree\b", r"\bmobile\b", r"\btelephone", r"\bportable\b",
    r"\bappels?\b", r"\bappeler\b", r"\bsms\b", r"\bmms\b", r"\bdata\b", r"\binternet\b", r"\b[45]g\b", r"\bapn\b",
    r"\babonn", r"\bresili", r"\brio\b", r"\bconso", r"\boptions?\b", r"\broaming\b", r"\bitinerance\b", r"\bpaiement",
    r"\bprelev", r"\brib\b", r"\bconseill", r"\bticket", r"\breclamation", r"\brembours", r"\bligne\b", r"\bnumero\b",
    r"\boperateur", r"\bcouverture\b", r"\bdebit\b", r"\bgigas?\b", r"\bgo\b", r"\bactiv", r"\brecharge", r"\bcode\b",
    r"\bsignal\b", r"\bbarres?\b", r"\bcontrat\b", r"\betranger\b", r"\bespace abonne", r"\bservice client", r"\bcompte\b",
    r"\bmessagerie\b", r"\brepondeur\b", r"\bwifi\b", r"\bmontant\b", r"\btarif", r"\bprix\b", r"\bpa[iy]e", r"\bfaq\b",
    r"\bengag", r"\bpuce\b", r"\baucun service\b", r"\bmastodon\b", r"\bsurtax", r"\bcout", r"\bcher\b", r"\btel\b",
    r"\bassistance\b", r"\bsav\b", r"\bhashtag", r"\bsatisfaction\b", r"\bdelai", r"\bmobile\.free\.fr",
    r"\bsos\b", r"\bmmsc\b", r"\bmnc\b", r"\bmcc\b", r"\boffres?\b", r"\btextos?\b", r"\bsite\b", r"\bcontact\b",
    r"\bespace (?:perso|client)", r"\biphone\b", r"\bandroid\b", r"\bsmartphone\b", r"\bappli", r"\bpoint d'?\s?acces\b",
    r"\bmessages?\b", r"\bvocal\b", r"\bportabilite\b", r"\btransfert\b", r"\bengagement\b", r"\bclient\b",
)
COMPETITOR = _re(r"\borange\b", r"\bsfr\b", r"\bbouygues\b", r"\bsosh\b", r"\bb ?& ?you\b", r"\bred by sfr\b", r"\blebara\b",
                 r"\bsyma\b", r"\bprixtel\b", r"\bla poste mobile\b", r"\bcoriolis\b")
COMPETITOR_OFFER = _re(r"\bprix\b", r"\btarif", r"\boffres?\b", r"\bforfaits?\b", r"\bpromo", r"\bmeilleur", r"\bcouverture\b",
                       r"\bavis\b", r"\bcout", r"\bcombien\b", r"\bfibre\b", r"\bbox\b")
PORTING = _re(r"\bportab", r"\brio\b", r"\bgarder\b", r"\bconserver\b", r"\bnumero\b", r"\bresili", r"\bquitter\b", r"\bpartir\b",
              r"\bchanger d'?\s?operateur\b", r"\bvenir\b", r"\barriver\b")
GREETING = re.compile(r"^\W*(?:bonjour|bonsoir|salut|hello|coucou|bjr|slt)\W*(?:a vous|tout le monde)?\W*$")
THANKS = re.compile(r"^\W*(?:merci|super|parfait|top|genial|ok|d'accord|c'est bon)\b[^?]{0,40}$")


@dataclass
class Analysis:
    """Everything the rules found in one message."""

    intent: str
    sentiment: float
    escalation_reasons: list[str] = field(default_factory=list)
    urgent: bool = False
    has_domain_term: bool = False
    competitor_offer: bool = False
    small_talk: str | None = None
    topic: str = ""


BILLING = _re(r"\bfactur", r"\bprelev", r"\brembours", r"\bmontant\b", r"\bpay", r"\beuros?\b", r"\d ?(?:€|eur\b|e\b)")
REPEATED = _re(r"\b(?:3|4|5|troisieme|quatrieme|cinquieme|[345] ?eme|[345]e)\s?fois\b[^.!?]{0,60}\b(?:toujours|meme|rien|encore|pas)\b",
               r"\b(?:3|4|5|trois|quatre|cinq) fois\b[^.!?]{0,40}\btoujours pas\b",
               r"\btoujours pas\b[^.!?]{0,40}\b(?:3|4|5|trois|quatre|cinq) fois\b")
_NOISE = [HUMAN_REQUEST, COMPLAINT, INSULTS, NEGATIVE_WORDS,
          _re(r"\bpas (?:a |avec )?un (?:robot|bot)\b", r"\b(?:svp|stp|s'?il vous plait|bonjour|bonsoir)\b", r"\bvous etes\b",
              r"\bj'?en ai marre\b", r"\bc'?est pour\b", r"\bofficielle?\b", r"\bformelle?\b")]


def topic_text(folded: str) -> str:
    """The message without requests for a human, complaint phrasing and insults: what to search for."""
    topic = folded
    for pattern in _NOISE:
        topic = pattern.sub(" ", topic)
    topic = re.sub(r"\s+", " ", topic).strip(" ,.;:!?-")
    return topic if len(re.findall(r"[a-z0-9]{3,}", topic)) >= 2 else folded


FOLLOW_UP = re.compile(r"^\W*(?:et|mais|aussi|pareil|meme chose|dans ce cas|sinon|ok et|d'accord et)\b")


def is_follow_up(text: str) -> bool:
    """An elliptical message that only makes sense with the previous question ("et en 5G ?")."""
    folded = fold(text)
    return bool(FOLLOW_UP.match(folded)) or len(re.findall(r"[a-z0-9]{3,}", folded)) <= 3


def sentiment_score(text: str) -> float:
    """Negative-sentiment intensity in [0, 1]: angry words, "!!", shouting and angry emojis."""
    folded = fold(text)
    score = 0.25 * len(NEGATIVE_WORDS.findall(folded)) + 0.3 * len(INSULTS.findall(folded))
    bangs = max((len(m) for m in re.findall(r"!{2,}", text)), default=0)
    score += 0.3 if bangs >= 3 else 0.2 if bangs == 2 else 0.0
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) > 0.6:
        score += 0.35
    score += min(0.4, 0.2 * len(NEGATIVE_EMOJI.findall(text)))
    return min(1.0, round(score, 3))


def rule_intent(folded: str) -> str | None:
    """First intent whose keywords appear, in priority order (résiliation before facturation...)."""
    for intent, pattern in INTENT_RULES.items():
        if pattern.search(folded):
            return intent
    return None


def analyze_message(text: str, intense_threshold: float = 0.6) -> Analysis:
    """Apply every rule to a message; retrieval later refines intent and confidence."""
    folded = fold(text).replace("’", "'")
    sentiment = sentiment_score(text)
    reasons: list[str] = []
    if HUMAN_REQUEST.search(folded):
        reasons.append("demande explicite d'un conseiller")
    if CANCEL_TERM.search(folded) and CANCEL_WANT.search(folded):
        reasons.append("demande de résiliation")
    if COMPLAINT.search(folded):
        reasons.append("réclamation formelle")
    if MONEY_DISPUTE.search(folded):
        reasons.append("remboursement ou litige financier")
    if REPEATED.search(folded):
        reasons.append("problème non résolu après plusieurs tentatives")
    if sentiment >= intense_threshold:
        reasons.append("mécontentement important")
    competitor_offer = bool(COMPETITOR.search(folded) and COMPETITOR_OFFER.search(folded) and not PORTING.search(folded))
    small_talk = None
    if GREETING.match(folded):
        small_talk = "greeting"
    elif THANKS.match(folded) and not DOMAIN.search(folded):
        small_talk = "thanks"
    topic = topic_text(folded)
    if any(r in reasons for r in ("réclamation formelle", "remboursement ou litige financier", "mécontentement important")) \
            and BILLING.search(folded):
        topic = "contester une facture, contestation de facture"  # billing disputes follow that procedure
    return Analysis(
        topic=topic,
        intent=rule_intent(folded) or "général",
        sentiment=sentiment,
        escalation_reasons=reasons,
        urgent=bool(URGENT_DOWN.search(folded)),
        has_domain_term=bool(DOMAIN.search(folded)),
        competitor_offer=competitor_offer,
        small_talk=small_talk,
    )


def ticket_priority(analysis: Analysis, reasons: list[str]) -> str:
    """Ticket priority from the procedure: URGENT service down, HIGH anger/disputes, MEDIUM requests."""
    if analysis.urgent:
        return "URGENT"
    if any(r in reasons for r in ("mécontentement important", "réclamation formelle", "remboursement ou litige financier",
                                   "problème non résolu après plusieurs tentatives")):
        return "HIGH"
    if any(r in reasons for r in ("demande de résiliation", "demande explicite d'un conseiller")):
        return "MEDIUM"
    return "LOW"
