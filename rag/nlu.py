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
    # "avoir" as a want ("avoir un conseiller"), not an auxiliary ("après avoir quitté un opérateur")
    r"\b(?:parler|causer|discuter|echanger|joindre|contacter|avoir(?! (?!une\b|quelqu)\w+[eiu]\b)|veux|voudrais|souhaite|"
    r"besoin d'?\s?|pass(?:er|ez)(?:-| )?moi|"
    r"mett(?:re|ez)(?:-| )?moi en (?:relation|contact)|en relation)\b"
    r"[^.?!]{0,30}\b(?:conseill\w*|humain|agent|(?:un|une|l'?)\s?operat(?:eur|rice)\b(?! (?:mobile|telephonique))|vraie? personne|personne (?:physique|reelle)|etre humain|quelqu'?\s?un|qqn|technicien|service client)",
    r"\bmett(?:re|ez)(?:-| )?moi en (?:relation|contact)\b",
    r"\bme pass(?:er|ez)\b[^.?!]{0,20}\b(?:conseill\w*|humain|agent|quelqu'?\s?un|responsable)",
    r"\b(?:une personne|un humain|quelqu'?\s?un|un conseiller) (?:s'?en occupe|me rappelle|me reponde)",
    r"\b(?:un|une) (?:vrai|vraie) (?:personne|humain)\b",
    r"^\W*(?:un |une )?(?:conseill\w*|humain|agent)(?: humain)?\W*(?:svp|stp|s'?il vous plait|$)",
    r"\b(?:un|une) (?:conseill\w*|humain|agent)(?: humain)?\W*(?:svp|stp|s'?il vous plait)\b",
    r"\b(?:quelqu'?\s?un|qqn|une personne|un humain|un conseiller)\b[^.?!]{0,25}\b(?:a|avec) qui (?:je (?:peux|pourrais)|"
    r"on (?:peut|pourrait)|parler|causer|m'?\s?adresser)",
    r"\betre rappele", r"\brappelez(?:-| )?moi\b", r"\bme faire rappeler\b",
    r"\bpas (?:a |avec )?un (?:robot|bot)\b", r"\bplutot qu'?\s?(?:a |avec )?(?:un|une|le|la) (?:robot|bot|chatbot|machine|programme|ia)\b",
    r"\ben chair et en os\b", r"\b(?:vraie?|veritable) (?:personne|humain|conseill\w*)\b",
    r"\b(?:conseill\w*|agent|humain|quelqu'?\s?un|une personne|technicien|responsable|superviseur)\b[^.?!]{0,20}"
    r"\b(?:peu[tx]|pourrai\w*|pouvez|pourriez|doit|devrait)\b[^.?!]{0,10}\b(?:(?:me |m'?\s?)(?:rappeler|appeler|telephoner|contacter|repondre|aider|"
    r"recontacter|ecrire|parler)|reprendre (?:ma|cette|la|notre) (?:conversation|discussion|demande)|prendre le relais|s'?\s?occuper de moi)",
    r"\b(?:traite|gere|pris en charge|examine|regle|vu|suivi)e?s? par (?:un|une|le|la) (?:responsable|conseill\w*|humain|agent|superviseur|manager|personne)\b",
    # in English, for customers who write it better than French
    r"\b(?:speak|talk|chat)(?:ing)? (?:to|with) (?:an? |the |your |some )?(?:human|agent|person|someone|somebody|operator|adviser|advisor|representative|real person)\b",
    r"\b(?:an?|real) (?:human|agent|person)\b[^.?!]{0,15}\bplease\b",
)
_LINE_OBJECT = (r"(?:(?:mon|ma|mes|le|la|les|sa|son|cette|ce|votre|vos|l'?\s?)\s?)?"
                r"(?:forfait|abonnement|ligne|contrat|compte|numero|sim|offre|free(?: mobile)?|(?:vos )?services?)")
# An end-of-service action on one of the service's objects (the verb, then the object within a few words),
# or a verb that can only mean it ("résilier", "se désabonner").
_END_VERB = (r"(?:(?:arret|ferm|clotur|coup|annul|stopp|supprim|suspend|termin|desactiv)(?:er|ez|ons|iez|ions|e)|clore|closez|"
             r"(?:me |se |nous )?debarrass(?:er|e|ez) de|romp(?:re|ez))\b")
_END_NOUN = r"(?:fermeture|cloture|suppression|annulation|desactivation|resiliation)"
CANCEL_TERM = _re(r"\bresili(?:er|ez|ons|iez|ions)\b", r"\bfin (?:de |du |d'?\s?)" + _LINE_OBJECT + r"\b",
                  r"\b(?:j'?\s?ai|nous avons|on a|c'?est) decide de (?:partir|vous quitter|quitter free)\b", r"\bje (?:vous )?resilie\b", r"^\W*resiliation\b", r"\bdemande de resiliation\b",
                  r"\bdesabonn", r"\b(?:quitt\w*|lach\w*) (?:free|vos services|votre operateur)\b",
                  rf"\b{_END_NOUN} (?:de |du |d'?\s?)" + _LINE_OBJECT + r"\b",
                  rf"\b{_END_VERB}(?: \w+){{0,2}}? " + _LINE_OBJECT + r"\b",
                  r"\b(?:arretez|stoppez|coupez|cloturez|fermez|resiliez|annulez) tout\b",
                  r"\bmet\w* (?:un )?(?:fin|terme|un point final) (?:a|au) ?" + _LINE_OBJECT,
                  r"\b(?:ne )?(?:veux|voudrais|souhaite|desire) plus (?:de |d'?\s?|du |des )?" + _LINE_OBJECT,
                  r"\bn'?\s?(?:en )?(?:veux|ai) plus (?:besoin|l'?\s?utilite)\b[^.?!]{0,20}" + _LINE_OBJECT)
# A request, not a question: a wish in the first person, a polite request, an order given to the operator,
# or a declared departure.
# The object as a pronoun ("pouvez-vous le désactiver ?"): counts when the message names the object elsewhere.
CANCEL_PRONOUN = re.compile(r"\b(?:le|la|les|l'?)\s?(?:resili|desactiv|ferm|clotur|coup|arret|supprim|annul|stopp|termin)(?:er|ez)\b")
LINE_OBJECT = re.compile(r"\b(?:forfait|abonnement|ligne|contrat|numero|sim)\b")
CANCEL_WANT = _re(r"\bje vous (?:demande|prie)\b", r"\bje (?:veux|voudrais|souhaite|souhaiterais|vais|compte|desire|demande|tiens a|resilie|me desabonne)\b",
                  r"\bj'?\s?(?:aimerais|ai decide|exige)\b", r"\b(?:je |j'?\s?)?(?:ne |n'?\s?)?(?:en )?(?:veux|ai) plus\b",
                  r"\bmerci de\b", r"\b(?:pouvez|pourriez)(?:-| )?vous\b", r"\bvous (?:pouvez|pourriez)\b", r"\bveuillez\b",
                  r"\b(?:peux|pourrais)(?:-| )?tu\b", r"\btu (?:peux|pourrais)\b", r"\bm'?\s?aider a\b",
                  r"\b(?:svp|stp|s'?il vous plait)\b", r"\bdemande de resiliation\b", r"\bc'?est (?:fini|termine)\b",
                  r"\bje m'?\s?en vais\b", r"\bje (?:pars|quitte|lache)\b", r"^\W*stop\b",
                  r"\b(?:resiliez|fermez|arretez|mettez|coupez|cloturez|annulez|stoppez|supprimez|suspendez|desactivez|terminez)\b",
                  r"^\W*(?:resili\w*|desabonn\w*)\b[^?]{0,40}$")
# The firm forms of a request: a question that has one of them is still a request ("je veux arrêter, ça coûte
# combien ?"); a how/how-much question with only the polite forms ("comment je résilie svp ?") is a question.
CANCEL_FIRM = _re(r"\bje vous (?:demande|prie)\b",
                  r"\bje (?:veux|voudrais|souhaite|souhaiterais|desire|demande|tiens a)\b(?! (?:garder|conserver|savoir|comprendre|connaitre))",
                  r"\bj'?\s?(?:aimerais|ai decide|exige)\b", r"\b(?:ne |n'?\s?)(?:en )?veux plus\b", r"\bje veux plus\b",
                  r"\bmerci de\b", r"\bveuillez\b", r"\bc'?est (?:fini|termine)\b", r"\bje m'?\s?en vais\b",
                  r"\b(?:resiliez|fermez|arretez|mettez|coupez|cloturez|annulez|stoppez|supprimez|suspendez|desactivez|terminez)\b")
# Asking about cancellation without asking for it: "je me renseigne", "comment ça marche", "pouvez-vous me dire si...".
CANCEL_HEDGE = _re(r"\bje me renseigne", r"\bme renseigner\b", r"\b(?:pas|pas encore|rien) (?:partir|resilier|quitter|decide)\b",
                   r"\bau cas ou\b", r"\bpour (?:information|info|savoir)\b", r"\bjuste (?:pour|savoir|une question)\b",
                   r"\bhypothetique", r"\bpas (?:encore )?decide", r"\b(?:dire|expliquer|indiquer|savoir|connaitre|renseigner) "
                   r"(?:comment|si|combien|quel\w*|quand|ou|la procedure|les demarches)\b")
# Questions whose form is a how/when/how much/whether: about the subject, not a request.
QUESTION_FORM = _re(r"^\W*(?:comment|combien|quand|pourquoi|ou|quel\w*|est-ce|a qui|aupres de qui|par ou)\b",
                    r"\bcomment\b", r"\bcombien\b", r"\best-ce qu", r"\bpar ou\b", r"\bquel\w* (?:est la |sont les )?(?:demarche|procedure|delai|frais)",
                    r"\b(?:peut-on|puis-je|dois-je|faut-il|doit-on)\b", r"\b(?:je peux|on peut|il faut|je dois|on doit)\b[^.!]*\?",
                    r"\b(?:sous|dans) quel delai\b", r"\b(?:c'?est|est-il) possible\b")
_NEGATED_WANT = re.compile(r"\bne (?:veux|voudrais|souhaite|compte) (?:pas|jamais)\b[^.?!,;:]*")
COMPLAINT = _re(r"\b(?:depos\w*|fai\w*|port\w*|ouvr\w*|envo\w*|formul\w*|lanc\w*)\b[^.?!]{0,20}\b(?:reclamation|plainte)",
                r"\bje (?:porte|vais porter) plainte", r"\blitige\b", r"\bmediateur\b", r"\breclamation (?:officielle|formelle|ecrite)",
                r"\bplainte\b", r"\b(?:ceci est|c'?est|voici) (?:une|ma) reclamation\b", r"\bj'?\s?exige\b",
                r"^\W*(?:objet\W*)?(?:reclamation|plainte|litige)\s*[:\-]")
# Money-back words: a dispute unless the message only asks how refunds work.
REFUND = _re(r"\brembours", r"\btrop (?:paye|preleve|facture)", r"\berreur de factur", r"\bdedommag", r"\bgeste commercial",
             r"\brecuperer (?:mon|mes) (?:argent|euros)")
CONTEST = _re(r"(?<!si )\bje conteste\b")
# Refusing to pay or demanding money back, in the first person: a dispute even when phrased as a question.
MONEY_DEMAND = _re(r"\bje (?:refuse|ne (?:vais|veux|compte) pas|n'?\s?ai pas l'?\s?intention) (?:de )?(?:payer|regler|paye)",
              r"\bje ne (?:paierai|payerai|reglerai|verserai)\b", r"\b(?:hors de |pas )question (?:de|que je) (?:pa[iy]|regl)",
              r"\bje (?:demande|veux|voudrais|souhaite|exige|reclame) (?:a etre |d'?\s?etre |etre )?rembours",
              r"\bje (?:demande|veux|exige|reclame) (?:le |un |mon |l'?\s?)?(?:remboursement|avoir|dedommagement)",
              r"\brembourse[zr](?:-| )?moi\b", r"\bremboursez\b")
# A dispute stated as a fact, in the first person: always a dispute, whatever the sentence form.
DISPUTE_FACT = _re(r"\bpreleve\w* (?:deux|2) fois", r"\bdouble prelevement", r"\bfactur\w* (?:deux|2) fois", r"\bvous me devez\b",
                   r"\bvol(?:e|er)? (?:mon|de l'?)\s?argent", r"\b(?:rendez|rendre|restituez|restituer)(?:-| )?(?:moi )?(?:mon|mes|l'?)\s?(?:argent|euros?|sous)",
                   r"\b(?:rendez|restituez|reversez|remboursez)(?:-| )?(?:moi|nous)\b",
                   r"\b(?:prelev|debit|factur|pris|preleve)\w*[^.?!]{0,40}\b(?:apres|alors que|malgre)\b[^.?!]{0,30}\bresili")
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
                       r"\bdelai\b", r"\bdans (?:quels?|quelles?) cas\b", r"\ba partir de quand\b", r"\ba quel moment\b",
                       r"\bquand (?:le|la|ce|votre) (?:chat|bot|chatbot|robot|assistant|service)\b",
                       # asking where to find the way in: the address, page or link to contact the service
                       r"\b(?:adresse|page|lien|url|formulaire)\b[^.?!]{0,25}\b(?:pour |afin de )?(?:contacter|joindre|ecrire)\b")
# Not wanting a human, said just before or inside the request phrase.
REFUSED_HUMAN = re.compile(r"\b(?:pas (?:la peine|besoin|necessaire|utile)|inutile|aucun besoin|nul besoin) (?:de |d'?\s?)(?:me |m'?\s?)?\w*\s?"
                           r"(?:a |avec |par )?(?:un |une |le |la )?(?:conseill|humain|agent|quelqu|personne|operat)"
                           r"|\b(?:ne |n'?\s?)?(?:veux|voudrais|souhaite|demande|cherche)(?: surtout)? (?:pas|plus|aucun)\b"
                           r"|\bsans (?:passer par|parler a|avoir|me passer)\b")
ROBOT = re.compile(r"\b(?:robot|bot|chatbot|machine|programme|ia)\b")
# A past attempt told as a story, right before the contact verb: "j'ai appelé un numéro pour joindre ...",
# "on a essayé de contacter ...". Without a present wish (HUMAN_WANT), the message asks about something else.
NARRATED_ATTEMPT = re.compile(r"\b(?:j'?\s?ai|j'?\s?avais|on a|on avait|nous avons|nous avions)\s(?:\w+\s)?"
                              r"(?:appele|essaye|tente|cherche|voulu|telephone|compose|ecrit|passe|reussi|pu)\b"
                              r"(?:[^.?!;]{0,50}\b(?:pour|de|d'|afin de|a))?\s?$")
# An agent said not to be needed now ("pas besoin maintenant, c'est pour savoir"): what follows is no wish either.
_NOT_NOW = re.compile(r"\b(?:pas|aucun) (?:besoin|urgent|presse|la peine)\b[^,;:?!.()]*|\b(?:c'?est |juste )?pour (?:savoir|info|me renseigner)\b"
                      r"|\bpar curiosite\b")
_HYPOTHETICAL_CLAUSE = re.compile(r"\b(?:si|quand|lorsqu'?\s?|une fois qu'?\s?|au cas ou|dans le cas ou|le jour ou)\b[^,;:?!.]*")
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
    r"\b(?:vous )?(?:vous )?(?:moquez|foutez) (?:du monde|de (?:moi|nous|vos clients|la gueule))", r"\bse (?:moque|fout)\w* (?:du monde|de)\b",
    r"\bhors de moi\b", r"\bexcede", r"\bulcere", r"\bpersonne ne (?:repond|rappelle|bouge|fait rien)\b", r"(?<!une )(?<!la )\bpersonne (?:ne )?m'?\s?(?:aide|ecoute|repond)\b", r"\bexaspere", r"\bindigne", r"\brevoltant", r"\bpitoyable",
)
NEGATIVE_EMOJI = re.compile("[\U0001F620\U0001F621\U0001F624\U0001F92C\U0001F44E\U0001F4A9\U0001F62D\U0001F61E\U0001F612]")
# Words only this service's questions use (strong) and words that also appear in everyday questions
# (weak: "téléphone", "compte", "code", "prix"...). A weak word alone does not make a question in scope.
DOMAIN_STRONG = _re(
    r"\bforfait", r"\bfactur", r"\bsim\b", r"\besim\b", r"\bmultisim\b", r"\breseau", r"\bsms\b", r"\bmms\b", r"\bdata\b",
    r"\b[45]g\b", r"\bapn\b", r"\babonn", r"\bresili", r"\brio\b", r"\bconso(?:s|mmation\w*|mme\w*)?\b", r"\boptions?\b", r"\broaming\b",
    r"\bitinerance\b", r"\bpaiement", r"\bprelev", r"\brib\b", r"\biban\b", r"\bticket", r"\breclamation", r"\brembours", r"(?<!en )\bligne\b",
    r"\boperateur", r"\bcouverture\b", r"\bdebit\b", r"\bgigas?\b", r"\bgo\b", r"\bactiv(?:er|ez|e|ee|ees|es|ation|ations)\b", r"\brecharge", r"\bsignal\b",
    r"\bbarres?\b", r"\betranger\b", r"\bespace abonne", r"\bservice client", r"\bmessagerie\b", r"\brepondeur\b",
    r"\bengag", r"\bpuce\b", r"\baucun service\b", r"\bmastodon\b", r"\bfedivers\w*", r"\bpenalites?\b", r"\bsurtax", r"\bsav\b", r"\bhashtag",
    r"\bmobile\.free\.fr", r"\bmmsc\b", r"\bmnc\b", r"\bmcc\b", r"\btextos?\b", r"\bpoint d'?\s?acces\b", r"\bportabilite\b",
    r"\bfree ?mobile\b", r"\bfreebox\b", r"\b(?:un|le|au|des|les|mon|votre|du|a un|d'?\s?un) conseill(?:er|ere)s?\b", r"\bhumain\b",
    r"\binternet\b", r"\bappels?\b", r"\bmon (?:numero|mobile|telephone|portable|tel)\b", r"\b555\b", r"\b3179\b",
    r"\bmon 0[67]\b", r"\bplaindre\b", r"\bsatisfait", r"\bquestions? frequentes\b", r"\bnumeros? (?:speciaux|surtaxes|courts)\b",
    r"\bmon dossier\b", r"\bjoindre (?:free|le service|l'?\s?assistance|le support|un conseiller)", r"\bespace (?:client|perso)",
    r"\bformulaire de contact\b", r"\bvous (?:ecrire|contacter|joindre|appeler|telephoner|envoyer un (?:mail|e-?mail|courrier|courriel|message))\b", r"\bappli(?:cation)? (?:free|mobile)\b", r"\bhors forfait\b", r"\bcsat\b", r"\bbot\b", r"\bchatbot\b", r"\bassistant\b", r"\bprise en charge\b",
    r"\bniveaux? d\'?\s?urgence\b", r"\bpriorite (?:haute|basse|moyenne|urgente)\b", r"\bniveaux? de priorite\b", r"\bqualification\b", r"\bdemandes? (?:des |de )?clients?\b", r"\bwifi\b",
    # how the service handles the customer's own request: urgency, priority, treatment
    r"\b(?:ma|mon|mes|votre|vos|une|la|les) (?:demande|requete|dossier|ticket|probleme)s?\b[^.?!]{0,30}\b(?:urgen\w*|priorit\w*|trait\w*|pris\w* en charge|qualifi\w*)",
)
DOMAIN_WEAK = _re(
    r"\bfree\b", r"\bmobile\b", r"\btelephone", r"\bportable\b", r"\bappeler\b", r"\bnumero\b", r"\bcode\b", r"\bcontrat\b",
    r"\bcompte\b", r"\bmontant\b", r"\btarif", r"\bprix\b", r"\bpa[iy]e", r"\bfaq\b", r"\bcout", r"\bcher\b", r"\btel\b",
    r"\bassistance\b", r"\bsatisfaction\b", r"\bdelai", r"\bsos\b", r"\boffres?\b", r"\bsite\b", r"\bcontact\b",
    r"\bespace (?:perso|client)", r"\biphone\b", r"\bandroid\b", r"\bsmartphone\b", r"\bappli", r"\bmessages?\b",
    r"\bvocal\b", r"\btransfert\b", r"\bclients?\b", r"\bconseill", r"\bagents?\b", r"\bdemandes?\b",
    r"\bsouscri\w*", r"\bfrais\b",
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
    # a bank's own services: its advisers, branches, loans, a card's PIN (paying the plan by card stays in scope)
    r"\bconseill\w* (?:bancaire|financier|en patrimoine)\b", r"\bagence (?:bancaire|de (?:ma|la) banque)\b",
    r"\bpret (?:immobilier|auto|etudiant|personnel|bancaire)\b", r"\b(?:portabilite|mobilite) bancaire\b",
    # other senses of this service's words: the GDPR's data portability, a camera ("APN", appareil photo numérique)
    r"\bportabilite (?:de mes |des |de ses |de vos )?donnees\b", r"\bgoogle\b(?! (?:pixel|play|fi)\b)",
    r"\bapn\b(?=[^.?!]{0,40}\b(?:photographie|appareils? photo|canon|nikon|fujifilm|reflex|objectifs?|hybride|(?:la|de la) photo)\b)",
    r"\b(?:photographie|appareils? photo|canon|nikon|fujifilm|reflex|objectifs?|hybride)\b[^.?!]{0,40}\bapn\b",
    r"\bcode (?:pin|secret) de (?:ma|la|votre) carte (?:bancaire|bleue|cb)\b",
)
# Words naming this service's own objects: another company named next to them is context, not the subject
# ("une facture pour la CAF", "mes photos WhatsApp ne partent pas en MMS").
OWN_OBJECT = _re(r"\bforfait", r"\bfactur", r"\bsim\b", r"\breseau", r"\bsms\b", r"\bmms\b", r"\bdata\b", r"\b[45]g\b",
                 r"\bapn\b", r"\brio\b", r"\bconso", r"\bligne\b", r"\bfree\b", r"\bgigas?\b", r"\bgo\b", r"\binternet\b",
                 r"\bappels?\b", r"\bportabilite\b", r"\bespace abonne", r"\bwifi\b", r"\bmobile\b", r"\bmon (?:telephone|tel|portable)\b",
                 r"\bprelev", r"\bpaiement", r"\brib\b", r"\biban\b", r"\besim\b", r"\bmessagerie\b", r"\bpuce\b", r"\bnumero\b")
# The line itself, as opposed to the ways of paying for it that any company shares.
OWN_LINE = _re(r"\bforfait", r"\bfree\b", r"\bligne\b", r"\be?sim\b", r"\bpuce\b", r"\breseau", r"\b[sm]ms\b", r"\bdata\b",
               r"\b[45]g\b", r"\bapn\b", r"\brio\b", r"\bgigas?\b", r"\bgo\b", r"\bportabilite\b", r"\bespace abonne",
               r"\bmessagerie\b", r"\bappels?\b", r"\bmon (?:numero|telephone|tel|portable|mobile)\b", r"\binternet mobile\b")
# A domain word whose complement names a non-telecom object ("forfait de ski", "facture d'électricité",
# "rembourser le billet de train"): the sentence is about that object, whatever the domain word.
_DOMAIN_NOUN = (r"(?:forfaits?|abonn\w*|factur\w*|rembours\w*|lignes?|cartes?|comptes?|offres?|resili\w*|contrats?|recharg\w*|"
                r"prelev\w*|reseaux?|operateur|tarifs?|option|plaintes?|reclamations?|litiges?)")
_FOREIGN = (r"(?:ski|remontees?|piscine|salle de (?:sport|gym|muscu\w*|fitness)|gym|fitness|musculation|club de \w+|cinema|theatre|musee|"
            r"concert|spectacle|transports? (?:en commun|publics?)|bus|metro|tram\w*|trains?|tgv|ter|ouigo|navigo|velib|velo|parking|autoroute|peage|"
            r"electricite|gaz|eau|energie|chauffage|fioul|loyer|syndic|assurance \w+|credit (?:immobilier|auto|conso\w*)|pret|cantine|creche|"
            r"journal|magazine|presse|billets?|vols? (?:annule|retarde)\w*|avion|hotel|sejour|vacances|voyage organise|location de voiture|"
            r"voiture|trottinette|securite sociale|secu|medecin|dentiste|hopital|pharmacie|veterinaire|restaurant|colis|commande|achat|"
            r"coiffeur|menage|plombier|garagiste|garage|fidelite|carte grise|cadeau|"
            # people a complaint can be against, other than the operator
            r"lunettes|soins dentaires|consultation|ordonnance|medicaments|voisin\w*|employeur|patron|proprietaire|bailleur|locataire|conjoint|collegue|agresseur)")
_QUALIFIER = r"(?: (?:mensuel|annuel|hebdomadaire|journalier|saison|famille|etudiant|adulte|enfant|senior)\w*)?"
FOREIGN_OBJECT = re.compile(rf"\b{_DOMAIN_NOUN}\b{_QUALIFIER} (?:de |d'|du |des |a |au |aux |chez |contre |le |la |les |l'|mon |ma |mes )?"
                            rf"(?:la |le |l'|les |mon |ma |mes |son |sa )?{_FOREIGN}\b")
# One of this service's objects owned by another company ("une facture EDF", "mon abonnement chez Netflix",
# "le compte de ma mutuelle"): the object is that company's, not ours.
OTHER_OWNED_OBJECT = re.compile(rf"\b{_DOMAIN_NOUN}\b (?:de |d'|du |chez |de chez |aupres de )?(?:la |le |l'|ma |mon |mes )?"
                                rf"(?:{OTHER_SERVICE.pattern})")
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
    porting: bool = False  # moving the number to or from another operator named in the message ("chez Bouygues")
    topic: str = ""
    bare_request: bool = False  # only "un conseiller svp": nothing to answer, hand over
    extra_topic: str | None = None  # a second search the rules ask for (a billing dispute: the contestation procedure)
    out_of_scope_probability: float | None = None  # the classifier's (rag.intent), when it gave a second opinion
    model_label: str | None = None  # the classifier's most likely label


BILLING = _re(r"\bfactur", r"\bprelev", r"\brembours", r"\bmontant\b", r"\bpay", r"\beuros?\b", r"\d ?(?:€|eur\b|e\b)")
_ORDINAL = r"(?:\d+|deux|trois|quatre|cinq|dix|deuxieme|troisieme|quatrieme|cinquieme|enieme|\d+ ?(?:e|eme|ieme))"
_ORDINAL3 = r"troisieme|quatrieme|cinquieme|sixieme|septieme|dixieme|enieme|n-?ieme|[3-9] ?(?:e|eme|ieme)|\d{2} ?(?:e|eme|ieme)"
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
               r"\b(?:deja|plusieurs fois|a plusieurs reprises)\b[^.!?]{0,60}\b(?:toujours rien|toujours pas|rien ne change|rien n'?\s?y fait|sans succes)",
               # an ordinal of three or more: "c'est la quatrième fois", "5e message"
               rf"\b(?:{_ORDINAL3}) (?:fois|conversation|message|demande|relance|appel|tentative|essai)s?\b",
               r"\b(?:[3-9]|\d{2}|trois|quatre|cinq|six|dix|plusieurs|maintes) (?:fois|tentatives|essais|relances|reprises)\b[\s\S]{0,80}"
               r"\b(?:toujours|encore|rien|sans succes|ne (?:marche|fonctionne|change|passe)|pas (?:mieux|resolu|regle))\b",
               # contacting about it three times or more is a repeat by itself
               r"\b(?:appele|ecrit|contacte|relance|signale|telephone)\w* (?:deja |au moins |plus de )?(?:[3-9]|\d{2}|trois|quatre|cinq|six|dix|plusieurs) fois\b",
               # having done the steps, still failing
               r"\b(?:apres avoir|j'?\s?ai (?:bien |deja )?(?:suivi|applique|fait|refait|essaye|teste|saisi|verifie|redemarre|reinitialise|"
               r"reinstalle|remis|change|eteint|desactive|reactive))\b"
               r"[^?]{0,120}\b(?:toujours (?:pas|rien|le meme|aussi)|encore (?:et toujours|pareil|absent|bloque|impossible|en panne|coupe)|"
               r"(?:est|sont|reste\w*) (?:toujours|encore) (?:absent|bloque|coupe|en panne|impossible|lent|hs\b|muet|inaccessible|injoignable|indisponible)|"
               r"rien n'?\s?y fait|rien ne change|sans succes|ca ne marche (?:toujours|pas plus))")
_NOISE = [INSULTS, NEGATIVE_WORDS,
          _re(r"\bpas (?:a |avec )?un (?:robot|bot)\b", r"\b(?:svp|stp|s'?il vous plait|bonjour|bonsoir)\b", r"\bvous etes\b",
              r"\bj'?en ai marre\b", r"\bc'?est pour\b", r"\bofficielle?\b", r"\bformelle?\b",
              rf"\b(?:c'?est )?(?:la |le )?{_ORDINAL}\s?(?:fois|conversation|message|demande)s?\b(?: que (?:je|j'?)\s?(?:vous )?\w+)?",
              # what the customer rules out is not what to search for ("donc c'est pas un dépassement")
              r"\b(?:c'?est|ce n'?\s?est|ca n'?\s?est|ce n'?\s?etait|c'?etait) (?:pas|plus) (?:un |une |le |la |l'?\s?|du |des |de |d'?\s?)\w+")]


# What is left of a request for an agent that asks how long the agent takes ("c'est long avant qu'on me réponde ?").
_AGENT_DELAY = re.compile(r"\b(?:combien de temps|(?:quel |le )?delai|c'?est long|temps d'?\s?attente|"
                          r"(?:me|nous) (?:repond\w*|rappel\w*|recontact\w*))\b")


def strip_noise(folded: str, requests: bool = True) -> str:
    """The message without insults, repeated-attempt phrasing and (when `requests`) the requests for a
    human or complaint wording. Questions *about* humans or complaints keep those words."""
    topic, human = HUMAN_REQUEST.subn(" ", folded) if requests else (folded, 0)
    for pattern in ([COMPLAINT] if requests else []) + _NOISE:
        topic = pattern.sub(" ", topic)
    topic = re.sub(r"\s+", " ", topic).strip(" ,.;:!?-")
    if human and _AGENT_DELAY.search(topic):
        topic = f"conseiller {topic}"  # "… un humain. c'est long avant qu'on me réponde ?": the delay is the agent's
    return topic


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


def _refuses_human(folded: str, match: re.Match) -> bool:
    """Whether a human-request phrase is said not to be wanted ("pas la peine de me passer un conseiller",
    "je ne veux pas parler à un agent"). Refusing a robot ("pas un robot") stays a request."""
    if ROBOT.search(match.group()):
        return False
    return bool(REFUSED_HUMAN.search(folded[max(0, match.start() - 40):match.end()]))


def human_phrases(folded: str) -> tuple[list[re.Match], bool]:
    """The human-request phrases of a message that are not refused, and whether one was refused."""
    wanted, refused = [], False
    for match in HUMAN_REQUEST.finditer(folded):
        if _refuses_human(folded, match):
            refused = True
        else:
            wanted.append(match)
    return wanted, refused


def asks_for_human(folded: str, wanted: list[re.Match]) -> bool:
    """An explicit request for a human (``wanted``: its unrefused phrases, see human_phrases), not a question
    about them ("si j'ai besoin d'un humain, c'est long ?") nor the story of a past attempt ("j'ai appelé le 08
    pour joindre le service client de ma mutuelle")."""
    if not wanted:
        return False
    match = wanted[0]
    if HUMAN_WANT.search(_HYPOTHETICAL_CLAUSE.sub(" ", _NOT_NOW.sub(" ", folded))):
        return True
    if NARRATED_ATTEMPT.search(folded, 0, match.start()):
        return False
    return not HUMAN_HYPOTHESIS.search(folded)


def _wished(folded: str) -> str:
    """The message without what it supposes ("si je résilie, ...") or declines ("je ne veux pas ...")."""
    return _HYPOTHETICAL_CLAUSE.sub(" ", _NEGATED_WANT.sub(" ", folded))


def asks_to_cancel(folded: str) -> bool:
    """A cancellation request (wish or order), not a question about cancelling ("si je résilie, je perds mon numéro ?")."""
    text = _wished(folded)
    named = CANCEL_TERM.search(text) or (CANCEL_PRONOUN.search(text) and LINE_OBJECT.search(text))
    if not named or CANCEL_HEDGE.search(folded):
        return False
    if QUESTION_FORM.search(text) and not CANCEL_FIRM.search(text):
        return False
    return bool(CANCEL_WANT.search(text))


def firm_cancellation(folded: str) -> bool:
    """A cancellation request in one of its firm forms ("je veux résilier, c'est effectif quand ?"): a request
    whatever the sentence form, which a classifier reading it as a question must not overrule."""
    return asks_to_cancel(folded) and bool(CANCEL_FIRM.search(_wished(folded)))


def foreign_subject(folded: str) -> bool:
    """Another company's service, or a domain word about a non-telecom object, with nothing of this
    service's own left once those are set aside ("une facture pour la CAF" stays in scope)."""
    foreign = OTHER_SERVICE.search(folded) or FOREIGN_OBJECT.search(folded)
    if not foreign:
        return False
    without_owned = OTHER_OWNED_OBJECT.sub(" ", folded)
    rest = OTHER_SERVICE.sub(" ", FOREIGN_OBJECT.sub(" ", without_owned))
    if without_owned != folded:
        # the account or bill is named as the other company's: its payment words are that company's too
        # ("le moyen de paiement de mon compte Amazon"); only the line itself brings the question back here
        return not OWN_LINE.search(rest)
    return not OWN_OBJECT.search(rest)


def analyze_message(text: str, intense_threshold: float = 0.6) -> Analysis:
    """Apply every rule to a message; retrieval later refines intent and confidence."""
    folded = fold(text).replace("’", "'")
    sentiment = sentiment_score(text)
    reasons: list[str] = []
    wanted_human, refused_human = human_phrases(folded)
    if asks_for_human(folded, wanted_human):
        reasons.append("demande explicite d'un conseiller")
    if asks_to_cancel(folded):
        reasons.append("demande de résiliation")
    stated = _HYPOTHETICAL_CLAUSE.sub(" ", folded)  # what the message states, not what it supposes
    asks_about = bool(ASKS_ABOUT.search(folded) or QUESTION_FORM.search(stated)) and not DEMAND.search(stated)
    if COMPLAINT.search(stated) and not asks_about:
        reasons.append("réclamation formelle")
    if MONEY_DEMAND.search(stated) or DISPUTE_FACT.search(stated) \
            or ((REFUND.search(stated) or CONTEST.search(stated)) and not asks_about):
        reasons.append("remboursement ou litige financier")
    if REPEATED.search(folded):
        reasons.append("problème non résolu après plusieurs tentatives")
    if sentiment >= intense_threshold:
        reasons.append("mécontentement important")
    porting = bool(COMPETITOR.search(folded) and PORTING.search(folded))
    competitor_offer = bool(COMPETITOR.search(folded) and COMPETITOR_OFFER.search(folded) and not porting)
    other_service = foreign_subject(folded)
    small_talk = None
    if GREETING.match(folded):
        small_talk = "greeting"
    elif THANKS.match(folded) and not DOMAIN.search(folded):
        small_talk = "thanks"
    # a refused agent ("pas la peine de me passer un conseiller") is not the subject either
    requests = refused_human or any(r in reasons for r in ("demande explicite d'un conseiller", "réclamation formelle"))
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
        porting=porting,
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
