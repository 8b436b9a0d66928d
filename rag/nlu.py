"""Rule-based understanding of a customer message: intent, sentiment, escalation triggers, scope.

Rules run on folded text (lower case, no accents), so "RÉSILIER", "resilier" and "résilier"
behave the same. They are deliberately explicit: each decision can be explained to an agent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from rag.text import analyze, fold

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
_LINE_OBJECT = r"(?:mon |ma |mes |le |la |sa |son |cette |l'?\s?)?(?:forfait|abonnement|ligne|contrat|compte|numero|sim)"
CANCEL_TERM = _re(r"\bresili", r"\bquitter free\b", r"\bje quitte free\b", r"\barret(?:er|ez) " + _LINE_OBJECT,
                  r"\bmett(?:re|ez|ons) (?:un )?(?:fin|terme) a " + _LINE_OBJECT,
                  r"\b(?:ferm|clotur|coup|annul|stopp|supprim)(?:er|ez) " + _LINE_OBJECT,
                  r"\bdesabonn", r"\bje ne (?:veux|souhaite) plus (?:de |d'?\s?)?(?:free|vos services|" + _LINE_OBJECT + ")")
# A request, not a question: a wish in the first person, or an order given to the operator.
CANCEL_WANT = _re(r"\bje (?:veux|voudrais|souhaite|souhaiterais|vais|compte|desire)\b", r"\bj'?\s?(?:aimerais|ai decide)",
                  r"\bveux\b", r"\bdemande de resiliation\b", r"\bcomment (?:je )?(?:peux |puis-je )?resili",
                  r"\bresiliez", r"\bfermez\b", r"\barretez\b", r"\bresilier mon", r"^\W*resili\w*\W*$",
                  r"\b(?:mettez|coupez|cloturez|annulez|stoppez|supprimez)\b", r"\bje ne (?:veux|souhaite) plus\b",
                  r"\bje me desabonne", r"\bje quitte free\b")
# Asking about cancellation without asking for it: "je me renseigne", "si je résilie, est-ce que...".
CANCEL_HEDGE = _re(r"\bje me renseigne", r"\b(?:pas|pas encore) (?:partir|resilier|quitter)\b", r"\bsi (?:un jour )?je (?:resili|pars|quitte)",
                   r"\bau cas ou\b", r"\bpour (?:information|info|savoir)\b", r"\bsi jamais\b", r"\bsi un jour\b",
                   r"\bhypothetique")
_NEGATED_WANT = re.compile(r"\bne (?:veux|voudrais|souhaite|compte) (?:pas|jamais)\b[^.?!,;:]*")
COMPLAINT = _re(r"\b(?:depos\w*|fai\w*|port\w*|ouvr\w*|envo\w*|formul\w*|lanc\w*)\b[^.?!]{0,20}\b(?:reclamation|plainte)",
                r"\bje (?:porte|vais porter) plainte", r"\blitige\b", r"\bmediateur\b", r"\breclamation (?:officielle|formelle|ecrite)",
                r"\bplainte\b", r"\b(?:ceci est|c'?est|voici) (?:une|ma) reclamation\b", r"\bj'?\s?exige\b")
REFUND = _re(r"\brembours", r"\bpreleve\w* (?:deux|2) fois", r"\bdouble prelevement", r"\btrop (?:paye|preleve|facture)",
             r"\bfactur\w* (?:deux|2) fois", r"\berreur de factur", r"\bvol(?:e|er)? (?:mon|de l'?)\s?argent",
             r"\bdedommag", r"\bgeste commercial", r"\b(?:rendez|rendre|restituez|restituer)(?:-| )?(?:moi )?(?:mon|mes|l'?)\s?(?:argent|euros?|sous)",
             r"\brecuperer (?:mon|mes) (?:argent|euros)", r"\bvous me devez\b",
             r"\bprelev\w*[^.?!]{0,40}\b(?:apres|alors que|malgre)\b[^.?!]{0,30}\bresili")
CONTEST = _re(r"(?<!si )\bje conteste\b")
# Asking how something works ("comment faire une réclamation ?", "sous quel délai ?") rather than doing it.
ASKS_ABOUT = _re(r"^\W*(?:comment|ou|quand|pourquoi)\b", r"\bcomment (?:on|je|faire|fait-on|proceder|dois-je|puis-je)\b",
                 r"\best-ce qu'?\s?(?:on|je) (?:peu[tx]|doi[st]|fai[ts])\b", r"\b(?:peut-on|puis-je|dois-je|faut-il)\b",
                 r"\b(?:sous|dans) quel delai\b", r"\b(?:en )?combien de temps\b", r"\bau bout de combien\b",
                 r"\bquelle? (?:est la )?(?:demarche|procedure)\b", r"\ben attendant\b")
DEMAND = _re(r"\bje (?:veux|voudrais|souhaite|demande|depose|porte|exige|vais|reclame)\b", r"\bj'?\s?(?:exige|aimerais)\b",
             r"\b(?:remboursez|rendez|corrigez|annulez|passez|mettez)\b")
# A human mentioned in a hypothesis or a question about delays is a question about the service.
HUMAN_HYPOTHESIS = _re(r"\bsi (?:un jour |jamais |besoin |par exemple )?(?:je|j'?|on|vous)\b", r"\b(?:quand|lorsqu'?\s?|une fois qu'?\s?)(?:je|j'?|on)\b",
                       r"\b(?:en )?combien de temps\b", r"\b(?:sous|dans) quel delai\b", r"\bau bout de combien\b",
                       r"\bdelai\b")
_HYPOTHETICAL_CLAUSE = re.compile(r"\b(?:si|quand|lorsqu'?\s?|une fois qu'?\s?)\b[^,;:?!.]*")
HUMAN_WANT = _re(r"\bje (?:veux|voudrais|souhaite|demande a|exige)\b", r"\bj'?\s?aimerais\b", r"\bpass(?:er|ez)(?:-| )?moi\b",
                 r"\bmett(?:re|ez)(?:-| )?moi\b", r"\bsvp\b", r"\bstp\b", r"\bs'?il vous plait\b", r"\bmaintenant\b",
                 r"\btout de suite\b")
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
# Words only this service's questions use (strong) and words that also appear in everyday questions
# (weak: "téléphone", "compte", "code", "prix"...). A weak word alone does not make a question in scope.
DOMAIN_STRONG = _re(
    r"\bforfait", r"\bfactur", r"\bsim\b", r"\besim\b", r"\bmultisim\b", r"\breseau", r"\bsms\b", r"\bmms\b", r"\bdata\b",
    r"\b[45]g\b", r"\bapn\b", r"\babonn", r"\bresili", r"\brio\b", r"\bconso(?:s|mmation\w*|mme\w*)?\b", r"\boptions?\b", r"\broaming\b",
    r"\bitinerance\b", r"\bpaiement", r"\bprelev", r"\brib\b", r"\bticket", r"\breclamation", r"\brembours", r"(?<!en )\bligne\b",
    r"\boperateur", r"\bcouverture\b", r"\bdebit\b", r"\bgigas?\b", r"\bgo\b", r"\bactiv(?:er|ez|e|ee|ees|es|ation|ations)\b", r"\brecharge", r"\bsignal\b",
    r"\bbarres?\b", r"\betranger\b", r"\bespace abonne", r"\bservice client", r"\bmessagerie\b", r"\brepondeur\b",
    r"\bengag", r"\bpuce\b", r"\baucun service\b", r"\bmastodon\b", r"\bsurtax", r"\bsav\b", r"\bhashtag",
    r"\bmobile\.free\.fr", r"\bmmsc\b", r"\bmnc\b", r"\bmcc\b", r"\btextos?\b", r"\bpoint d'?\s?acces\b", r"\bportabilite\b",
    r"\bfree ?mobile\b", r"\bfreebox\b", r"\b(?:un|le|au|des|les|mon|votre|du|a un|d'?\s?un) conseill(?:er|ere)s?\b", r"\bhumain\b",
    r"\binternet\b", r"\bappels?\b", r"\bmon (?:numero|mobile|telephone|portable|tel)\b", r"\b555\b", r"\b3179\b",
    r"\bmon 0[67]\b", r"\bplaindre\b", r"\bsatisfait", r"\bquestions? frequentes\b", r"\bnumeros? (?:speciaux|surtaxes|courts)\b",
    r"\bmon dossier\b", r"\bjoindre (?:free|le service|l'?\s?assistance|le support|un conseiller)", r"\bespace (?:client|perso)",
    r"\bformulaire de contact\b", r"\bappli(?:cation)? (?:free|mobile)\b", r"\bhors forfait\b", r"\bcsat\b", r"\bbot\b", r"\bchatbot\b", r"\bassistant\b", r"\bprise en charge\b",
    r"\bniveaux? d\'?\s?urgence\b", r"\bpriorite (?:haute|basse|moyenne|urgente)\b", r"\bniveaux? de priorite\b", r"\bqualification\b", r"\bdemandes? (?:des |de )?clients?\b", r"\bwifi\b",
)
DOMAIN_WEAK = _re(
    r"\bfree\b", r"\bmobile\b", r"\btelephone", r"\bportable\b", r"\bappeler\b", r"\bnumero\b", r"\bcode\b", r"\bcontrat\b",
    r"\bcompte\b", r"\bmontant\b", r"\btarif", r"\bprix\b", r"\bpa[iy]e", r"\bfaq\b", r"\bcout", r"\bcher\b", r"\btel\b",
    r"\bassistance\b", r"\bsatisfaction\b", r"\bdelai", r"\bsos\b", r"\boffres?\b", r"\bsite\b", r"\bcontact\b",
    r"\bespace (?:perso|client)", r"\biphone\b", r"\bandroid\b", r"\bsmartphone\b", r"\bappli", r"\bmessages?\b",
    r"\bvocal\b", r"\btransfert\b", r"\bclients?\b", r"\bconseill", r"\bdemandes?\b",
)
DOMAIN = _re(DOMAIN_STRONG.pattern, DOMAIN_WEAK.pattern)
# The same strong words as analyzer stems, matched against the retriever's typo-corrected tokens
# ("forfai" -> "forf"), so a misspelt domain word still counts.
_STRONG_WORDS = (
    "forfait facture facturation sim esim reseau sms mms data apn abonnement resilier resiliation rio consommation "
    "roaming itinerance prelevement paiement operateur portabilite recharge gigas couverture debit activation "
    "reclamation remboursement messagerie repondeur internet"
)


@lru_cache(maxsize=1)
def strong_stems() -> frozenset[str]:
    """Analyzer stems of the strong domain words."""
    return frozenset(t for t in analyze(_STRONG_WORDS) if not t.startswith("grp_") and len(t) >= 3)


def names_domain(tokens: list[str]) -> bool:
    """Whether analyzed (and corrected) query tokens include a strong domain word."""
    return not strong_stems().isdisjoint(tokens)
# Other companies' services named as the subject of the question: out of scope even with "résilier" or "compte".
OTHER_SERVICE = _re(
    r"\bnetflix\b", r"\bspotify\b", r"\bdeezer\b", r"\bdisney\b", r"\bcanal ?\+", r"\bamazon\b", r"\bprime video\b",
    r"\byoutube\b", r"\bapple (?:music|tv)\b", r"\bdazn\b", r"\bfacebook\b", r"\binstagram\b", r"\btiktok\b", r"\bsnapchat\b",
    r"\bgmail\b", r"\buber\b", r"\bdeliveroo\b", r"\bsncf\b", r"\bratp\b", r"\bedf\b", r"\bengie\b",
    r"\bcaf\b", r"\bimpots?\b", r"\burssaf\b", r"\bameli\b", r"\bpole emploi\b", r"\bfrance travail\b",
    r"\bassurances? (?:habitation|auto|voiture|vie|sante|emprunteur|moto)\b", r"\bmutuelle\b", r"\bsalle de sport\b",
    r"\bmagazine\b", r"\bjournal\b", r"\bbanque en ligne\b", r"\bcredit (?:immobilier|auto|conso)\b", r"\bzalando\b",
    r"\bcdiscount\b", r"\bvinted\b", r"\bleboncoin\b", r"\bpaypal\b",
)
# Words naming this service's own objects: another company named next to them is context, not the subject
# ("une facture pour la CAF", "mes photos WhatsApp ne partent pas en MMS").
OWN_OBJECT = _re(r"\bforfait", r"\bfactur", r"\bsim\b", r"\breseau", r"\bsms\b", r"\bmms\b", r"\bdata\b", r"\b[45]g\b",
                 r"\bapn\b", r"\brio\b", r"\bconso", r"\bligne\b", r"\bfree\b", r"\bgigas?\b", r"\bgo\b", r"\binternet\b",
                 r"\bappels?\b", r"\bportabilite\b", r"\bespace abonne", r"\bwifi\b", r"\bmobile\b", r"\bmon (?:telephone|tel|portable)\b")
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
    domain: str = "none"  # "strong", "weak" or "none": how clearly the words belong to this service
    competitor_offer: bool = False
    other_service: bool = False
    small_talk: str | None = None
    topic: str = ""
    bare_request: bool = False  # only "un conseiller svp": nothing to answer, hand over
    extra_topic: str | None = None  # a second search the rules ask for (a billing dispute: the contestation procedure)


BILLING = _re(r"\bfactur", r"\bprelev", r"\brembours", r"\bmontant\b", r"\bpay", r"\beuros?\b", r"\d ?(?:€|eur\b|e\b)")
_ORDINAL = r"(?:\d+|deux|trois|quatre|cinq|dix|deuxieme|troisieme|quatrieme|cinquieme|enieme|\d+ ?(?:e|eme|ieme))"
_FAILED = r"(?:toujours|meme|rien|encore|pas|aucun|sans succes|sans resultat|ne change|ne marche|ne fonctionne)"
REPEATED = _re(rf"\b(?:3|4|5|troisieme|quatrieme|cinquieme|[345] ?eme|[345]e)\s?fois\b[^.!?]{{0,60}}\b{_FAILED}\b",
               r"\b(?:3|4|5|trois|quatre|cinq) fois\b[^.!?]{0,40}\btoujours pas\b",
               r"\btoujours pas\b[^.!?]{0,40}\b(?:3|4|5|trois|quatre|cinq) fois\b",
               # "4e fois que je vous écris", "troisième conversation pour le même problème"
               rf"\b{_ORDINAL}\s?fois (?:que|qu'?\s?) ?(?:je|j'?)\s?(?:vous |te )?(?:ecri|contact|appel|demand|signal|expliqu|relance|redemarr|essai|recommenc)",
               rf"\b(?:{_ORDINAL}|plusieurs|nombreu\w*) (?:conversations?|messages?|demandes?|appels?|relances?|tickets?|contacts?)\b[^.!?]{{0,40}}"
               r"\b(?:meme|toujours|encore|deja|pour rien|sans)\b",
               # "j'ai tout refait (...) toujours rien", "malgré vos conseils, toujours pas"
               rf"\b(?:j'?\s?ai (?:deja )?tout (?:re)?(?:fait|essaye|tente|teste|verifie)|malgre (?:vos|les|tous vos|toutes vos|toutes les|tous les) "
               rf"(?:conseils|manipulations|manips|etapes|solutions|essais|verifications))\b[\s\S]{{0,160}}\b{_FAILED}\b",
               rf"\b{_FAILED}\b[^.!?]{{0,40}}\bmalgre (?:vos|les|tous vos|toutes vos|toutes les|tous les) (?:conseils|manipulations|etapes|solutions)",
               r"\b(?:deja|plusieurs fois|a plusieurs reprises)\b[^.!?]{0,60}\b(?:toujours rien|toujours pas|rien ne change|rien n'?\s?y fait|sans succes)")
_NOISE = [INSULTS, NEGATIVE_WORDS,
          _re(r"\bpas (?:a |avec )?un (?:robot|bot)\b", r"\b(?:svp|stp|s'?il vous plait|bonjour|bonsoir)\b", r"\bvous etes\b",
              r"\bj'?en ai marre\b", r"\bc'?est pour\b", r"\bofficielle?\b", r"\bformelle?\b",
              rf"\b(?:c'?est )?(?:la |le )?{_ORDINAL}\s?(?:fois|conversation|message|demande)s?\b(?: que (?:je|j'?)\s?(?:vous )?\w+)?")]


def strip_noise(folded: str, requests: bool = True) -> str:
    """The message without insults, repeated-attempt phrasing and (when `requests`) the requests for a
    human or complaint wording. Questions *about* humans or complaints keep those words."""
    topic = folded
    for pattern in ([HUMAN_REQUEST, COMPLAINT] if requests else []) + _NOISE:
        topic = pattern.sub(" ", topic)
    return re.sub(r"\s+", " ", topic).strip(" ,.;:!?-")


def has_subject(text: str) -> bool:
    """At least two words of three letters or more: something to search for."""
    return len(re.findall(r"[a-z0-9]{3,}", text)) >= 2


def topic_text(folded: str, requests: bool = True) -> str:
    """What to search for: the message without noise (see strip_noise), or all of it when nothing is left."""
    topic = strip_noise(folded, requests)
    return topic if has_subject(topic) else folded


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


def asks_for_human(folded: str) -> bool:
    """An explicit request for a human, not a question about them ("si j'ai besoin d'un humain, c'est long ?")."""
    match = HUMAN_REQUEST.search(folded)
    if match is None:
        return False
    if HUMAN_WANT.search(_HYPOTHETICAL_CLAUSE.sub(" ", folded)):
        return True
    return not HUMAN_HYPOTHESIS.search(folded)


def asks_to_cancel(folded: str) -> bool:
    """A cancellation request (wish or order), not a question about cancelling ("si je résilie, je perds mon numéro ?")."""
    if not CANCEL_TERM.search(folded):
        return False
    wish = _NEGATED_WANT.sub(" ", folded)
    if not CANCEL_WANT.search(wish):
        return False
    return not CANCEL_HEDGE.search(folded)


def analyze_message(text: str, intense_threshold: float = 0.6) -> Analysis:
    """Apply every rule to a message; retrieval later refines intent and confidence."""
    folded = fold(text).replace("’", "'")
    sentiment = sentiment_score(text)
    reasons: list[str] = []
    if asks_for_human(folded):
        reasons.append("demande explicite d'un conseiller")
    if asks_to_cancel(folded):
        reasons.append("demande de résiliation")
    asks_about = bool(ASKS_ABOUT.search(folded)) and not DEMAND.search(folded)
    if COMPLAINT.search(folded) and not asks_about:
        reasons.append("réclamation formelle")
    if REFUND.search(folded) or (CONTEST.search(folded) and not asks_about):
        reasons.append("remboursement ou litige financier")
    if REPEATED.search(folded):
        reasons.append("problème non résolu après plusieurs tentatives")
    if sentiment >= intense_threshold:
        reasons.append("mécontentement important")
    competitor_offer = bool(COMPETITOR.search(folded) and COMPETITOR_OFFER.search(folded) and not PORTING.search(folded))
    other_service = bool(OTHER_SERVICE.search(folded)) and not OWN_OBJECT.search(folded)
    small_talk = None
    if GREETING.match(folded):
        small_talk = "greeting"
    elif THANKS.match(folded) and not DOMAIN.search(folded):
        small_talk = "thanks"
    requests = any(r in reasons for r in ("demande explicite d'un conseiller", "réclamation formelle"))
    topic = topic_text(folded, requests)
    bare_request = "demande explicite d'un conseiller" in reasons and not has_subject(strip_noise(folded))
    extra_topic = None
    if any(r in reasons for r in ("réclamation formelle", "remboursement ou litige financier", "mécontentement important")) \
            and BILLING.search(folded):
        extra_topic = "contester une facture, contestation de facture"  # billing disputes follow that procedure
    return Analysis(
        topic=topic,
        intent=rule_intent(folded) or "général",
        sentiment=sentiment,
        escalation_reasons=reasons,
        urgent=bool(URGENT_DOWN.search(folded)),
        has_domain_term=bool(DOMAIN.search(folded)),
        domain="strong" if DOMAIN_STRONG.search(folded) else "weak" if DOMAIN_WEAK.search(folded) else "none",
        competitor_offer=competitor_offer,
        other_service=other_service,
        extra_topic=extra_topic,
        bare_request=bare_request,
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
