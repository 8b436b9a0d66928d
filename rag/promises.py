"""Promises an answer must not make: a human, a ticket, a callback or a refund "on its way".

KB texts (past conversations and procedures especially) keep the agent's wording ("votre demande
est transmise à un conseiller", "un ticket a été ouvert"). Returned verbatim in a turn that did
not escalate, they promise something nobody will do. `find_promises` spots such sentences in any
text (extractive, generated, KB entry); `keep_promises_honest` rewrites or drops them.

Kinds: ``handoff`` (a human takes over), ``ticket`` (a ticket exists), ``callback`` (someone will
call) and ``refund`` (money will be paid back). A turn that escalated opens a ticket and hands the
conversation over, so ``handoff`` and ``ticket`` are true there; callbacks and refunds are never
performed by the assistant, so they are never allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from rag.text import fold

ESCALATED_KINDS = frozenset({"handoff", "ticket"})

# "a été", "a bien été", "vient d'être", "va être", "sera", "est désormais"... before a participle.
_DONE = (r"(?:a|ont|est|sont|sera|seront|va|vont|vient d'?\s?|viennent d'?\s?)(?: bien| deja| maintenant| desormais)?"
         r" (?:ete |etre |d'?\s?etre )?(?:bien )?")

# What happens (or happened) to *this customer's* request: false unless this turn escalated,
# whatever condition precedes it ("Si rien ne change, je transmets votre demande").
_SPECIFIC = {
    "handoff": [
        r"\bje (?:vous |la |le |l')?(?:aussi )?(?:transmets|transmettrai|transfere|transfererai|redirige|mets en relation|"
        r"met en relation|passe (?:a |la main)|fais suivre)",
        r"\bje vous (?:passe|mets|met) (?:en relation|en contact|un conseiller|a un conseiller)",
        r"\b(?:votre|ta|la presente) (?:demande|dossier|reclamation|requete|message|conversation)\b[^.!?]{0,25}"
        r"\b" + _DONE + r"(?:transmise?s?|transferee?s?|envoyee?s?|remontee?s?|escaladee?s?|prise?s? en charge|confiee?s?)",
        r"\bun conseiller (?:va|vous contactera|vous recontactera|vous repondra|prendra contact|reviendra vers vous|"
        r"s'occupe de (?:vous|votre)|a pris en charge|a ete prevenu|est en route)",
        r"\b(?:nous|on) (?:vous )?(?:transmettons|transferons|allons transmettre|va transmettre)",
    ],
    "ticket": [
        r"\b(?:votre|le) (?:ticket|dossier)\b[^.!?]{0,15}\b" + _DONE + r"(?:ouvert|cree|enregistre)",
        # "un ticket est créé" describes the procedure (see _PROCESS); "un ticket a été / vient d'être créé" is done.
        r"\bun (?:ticket|dossier)\b[^.!?]{0,15}\b(?:a|vient d'?\s?|va|sera|est (?:bien|deja|maintenant|desormais))"
        r"(?: bien| deja)? (?:ete |etre |d'?\s?etre )?(?:bien )?(?:ouvert|cree|enregistre)",
        r"\bj'?\s?(?:ouvre|ai ouvert|cree|ai cree) (?:un|votre) (?:ticket|dossier)",
        r"\bticket (?:n°|no|numero) ?\d",
    ],
    "callback": [
        r"\b(?:vous|tu) (?:serez|seras|allez etre|vas etre|etes) (?:re)?(?:rappele|recontacte|appele)",
        r"\b(?:on|nous|il|elle|un conseiller|un technicien|quelqu'un)\b[^.!?]{0,20}\b(?:vous|te) "
        r"(?:rappelle(?:ra)?|recontacte(?:ra)?|appelle(?:ra)?|rappeler|recontacter|telephoner)a?\b",
        r"\b(?:vous|tu) (?:recevrez|allez recevoir|recevras) un appel",
    ],
    "refund": [
        r"\b(?:vous|tu) (?:serez|seras|allez etre|vas etre|etes|avez ete) (?:integralement |bien )?(?:rembourse|dedommage|credite)",
        r"\b(?:nous|on|je) (?:allons |va |vais )?(?:vous |te )(?:rembourse(?:rons|ra|rai)?|rembourser|dedommage|crediter|recredite)",
        r"\b(?:votre|le|un) (?:remboursement|avoir|geste commercial|dedommagement)\b[^.!?]{0,20}\b" + _DONE
        + r"(?:effectue|accorde|verse|valide|applique|lance|envoye|en cours)",
    ],
}
# The procedure described in general ("un ticket est créé", "un conseiller vous répond ici"):
# a promise only when nothing before it in its paragraph sets a condition ("si", "lorsque"...).
_PROCESS = {
    "ticket": [r"\bun ticket (?:est|sera) (?:alors |aussitot |automatiquement )?(?:cree|ouvert)"],
    "handoff": [
        r"\bun conseiller\b[^.!?]{0,60}\bvous (?:repond|contacte|ecrit)",
        r"\b(?:la )?reponse du conseiller (?:apparait|arrive|arrivera) (?:ici|dans (?:ce chat|cette conversation))",
        r"\bla reponse arrivera dans cette conversation",
    ],
}
_CONDITION = re.compile(
    r"\b(?:si|s'il|lorsqu'?\s?\w*|quand|lors d'?\s?\w*|en cas d'?\s?\w*|des qu'?\s?\w*|une fois qu'?\s?\w*|"
    r"peut|peuvent|pourra|pourrai|pourront|peux|dites-le|demandez|decrivez|signalez|ecrivez)\b"
)


def _compile(groups: dict[str, list[str]]) -> list[tuple[str, re.Pattern]]:
    return [(kind, re.compile(p)) for kind, patterns in groups.items() for p in patterns]


_SPECIFIC_RE = _compile(_SPECIFIC)
_PROCESS_RE = _compile(_PROCESS)


@dataclass(frozen=True)
class Promise:
    """One sentence that states an action as done or under way."""

    kind: str
    sentence: str


def _norm(text: str) -> str:
    return re.sub(r"[ \t]+", " ", fold(text).replace("’", "'"))


# Paragraphs are split on blank lines; sentences on ., ! and ? followed by a space, or a line
# break. A colon does not end a sentence, so "Dites-le dans ce chat : un ticket est créé" keeps
# its condition.
_PARAGRAPH = re.compile(r"(\n[ \t]*\n\s*)")
_SENTENCE_SPLIT = re.compile(r"((?<=[.!?])(?<!^\d\.)[ \t]+(?=\S)|\n)", re.MULTILINE)  # "2. Redémarrez" is one sentence


def _paragraphs(text: str) -> list[str]:
    return [p for p in _PARAGRAPH.split(text) if not _PARAGRAPH.fullmatch(p)]


def _sentences(paragraph: str) -> list[str]:
    return [s for s in _SENTENCE_SPLIT.split(paragraph)[::2] if s.strip()]


def _sentence_promises(sentence: str, conditioned: bool) -> list[str]:
    """Kinds promised by one sentence; `conditioned` is True when an earlier clause set a condition."""
    folded = _norm(sentence)
    kinds = [kind for kind, pattern in _SPECIFIC_RE if pattern.search(folded)]
    for kind, pattern in _PROCESS_RE:
        match = pattern.search(folded)
        if match and not conditioned and not _CONDITION.search(folded[: match.start()]):
            kinds.append(kind)
    return list(dict.fromkeys(kinds))


def find_promises(text: str, escalated: bool = False) -> list[Promise]:
    """Sentences of `text` promising an action this turn did not take (handoff/ticket allowed if escalated)."""
    found = []
    for paragraph in _paragraphs(text):
        conditioned = False
        for sentence in _sentences(paragraph):
            for kind in _sentence_promises(sentence, conditioned):
                if not (escalated and kind in ESCALATED_KINDS):
                    found.append(Promise(kind, sentence.strip()))
            conditioned = conditioned or bool(_CONDITION.search(_norm(sentence)))
    return found


# First-person actions and "votre demande est transmise" become an offer the customer can take up.
_REWRITES = [
    (re.compile(r"\b([Jj]e) (vous |la |le |l')?(aussi )?(transmets|transfère|transfere)\b( aussi)?"),
     lambda m: f"{m.group(1)} peux{' aussi' if m.group(3) or m.group(5) else ''} {m.group(2) or ''}"
               f"{'transmettre' if m.group(4) == 'transmets' else 'transférer'}"),
    (re.compile(r"\b([Jj]e) vous (mets|met) en relation\b"), lambda m: f"{m.group(1)} peux vous mettre en relation"),
    (re.compile(r"\b([Jj]e) vous passe\b"), lambda m: f"{m.group(1)} peux vous passer"),
    (re.compile(r"\b([Vv]otre (?:demande|réclamation|reclamation)) (?:est|sera|va être|va etre) (transmise|transférée|transferee)\b"),
     lambda m: f"{m.group(1)} peut être {m.group(2)}"),
]
_CONDITION_PREFIX = "Lorsqu'une demande est transmise à un conseiller : "


def _rewrite(sentence: str) -> str:
    for pattern, repl in _REWRITES:
        sentence = pattern.sub(repl, sentence)
    return sentence


def drop_sentences(text: str, pattern: re.Pattern) -> str:
    """`text` without the sentences whose folded form matches `pattern`, layout kept."""
    out = []
    for paragraph in _PARAGRAPH.split(text):
        if _PARAGRAPH.fullmatch(paragraph):
            out.append(paragraph)
            continue
        pieces = _SENTENCE_SPLIT.split(paragraph)
        kept = []
        for i in range(0, len(pieces), 2):
            sentence, sep = pieces[i], pieces[i + 1] if i + 1 < len(pieces) else ""
            if not (sentence.strip() and pattern.search(_norm(sentence))):
                kept.extend([sentence, sep])
        out.append("".join(kept).rstrip())
    return re.sub(r"\n{3,}", "\n\n", "".join(out)).strip()


@lru_cache(maxsize=4096)
def keep_promises_honest(text: str, escalated: bool = False) -> str:
    """`text` without promises this turn cannot keep: offers instead of claims, conditions, or the sentence dropped.

    First-person hand-offs ("je transmets votre demande") become offers ("je peux transmettre"); a
    sentence describing the procedure gets a condition in front; any other promising sentence
    (ticket already opened, callback, refund) is removed. Layout (line breaks, lists) is kept.
    """

    def broken(sentence: str, conditioned: bool) -> list[str]:
        return [k for k in _sentence_promises(sentence, conditioned) if not (escalated and k in ESCALATED_KINDS)]

    out = []
    for paragraph in _PARAGRAPH.split(text):
        if _PARAGRAPH.fullmatch(paragraph):
            out.append(paragraph)
            continue
        pieces = _SENTENCE_SPLIT.split(paragraph)  # sentence, separator, sentence, ...
        kept: list[str] = []
        conditioned = False
        for i in range(0, len(pieces), 2):
            sentence, sep = pieces[i], pieces[i + 1] if i + 1 < len(pieces) else ""
            if sentence.strip() and broken(sentence, conditioned):
                candidate = _rewrite(sentence)
                if broken(candidate, conditioned):
                    lead = len(candidate) - len(candidate.lstrip())
                    body = candidate[lead:]
                    candidate = candidate[:lead] + _CONDITION_PREFIX + body[:1].lower() + body[1:]
                if broken(candidate, conditioned):
                    continue  # a ticket already opened, a callback, a refund: nothing true to say
                sentence = candidate
            kept.extend([sentence, sep])
            conditioned = conditioned or bool(_CONDITION.search(_norm(sentence)))
        out.append("".join(kept).rstrip())
    return "".join(out).strip()
