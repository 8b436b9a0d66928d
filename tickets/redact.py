"""Redaction of personal data in free text (exports, logs): phone numbers, e-mails, IBANs, names.

Patterns target what French customers type: ``06 12 34 56 78``, ``+33 6 12 34 56 78``,
``0033612345678``, ``FR76 3000 6000 0112 3456 7890 189``, ``jean.dupont@example.fr`` and
"je m'appelle Jean Dupont". Redaction errs on the side of removing too much.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# IBAN: country code, 2 check digits, then 11 to 30 alphanumerics, compact or grouped by 4 (the grouping
# stops the match from swallowing the next word: "FR76 3000 ... 189 merci").
IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b", re.IGNORECASE)
# French numbers, national (0X) or international (+33 / 0033, optional "(0)"), any separators.
# Digits may be grouped any way (06 12 34 56 78, 0612 345 678, 06 1234 5678), one separator at most between two.
PHONE_RE = re.compile(r"(?<![\w+])(?:(?:\+|00)33[\s.-]?(?:\(0\)[\s.-]?)?|0)[1-9](?:[\s.-]?\d){8}(?!\d)")
# "je m'appelle Jean Dupont", "mon nom est Martin", "je suis Mme Durand": the capitalised words after.
NAME_RE = re.compile(
    r"(?P<lead>\b(?i:je m['’]appelle|mon nom est|mon nom c['’]est|je suis (?:M\.|Mme|Mlle|monsieur|madame))\s+)"
    r"(?P<name>[A-ZÀ-Ý][\w'’-]+(?:\s+[A-ZÀ-Ý][\w'’-]+){0,2})"
)

REDACTIONS = (
    (EMAIL_RE, "[email]"),
    (IBAN_RE, "[iban]"),
    (PHONE_RE, "[téléphone]"),
)


def redact(text: str | None, names: Iterable[str] = ()) -> str:
    """Return ``text`` with e-mails, IBANs, French phone numbers and introduced names masked.

    ``names`` are the known names of the people involved (e.g. the contact-form name of the
    customer): the full name and each of its words of 3+ letters are masked wherever they appear.
    """
    if not text:
        return ""
    for pattern, placeholder in REDACTIONS:
        text = pattern.sub(placeholder, text)
    text = NAME_RE.sub(lambda m: f"{m.group('lead')}[nom]", text)
    known = name_pattern(names)
    return known.sub("[nom]", text) if known else text


def name_pattern(names: Iterable[str]) -> re.Pattern | None:
    """One case-insensitive pattern matching the given names and their parts (longest first)."""
    parts: set[str] = set()
    for name in names:
        name = re.sub(r"\s+", " ", (name or "").strip())
        if not name:
            continue
        parts.add(name)
        parts.update(w for w in re.split(r"[\s'’-]+", name) if len(w) >= 3)
    if not parts:
        return None
    alternatives = "|".join(re.escape(p) for p in sorted(parts, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
