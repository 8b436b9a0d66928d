"""Redaction of personal data in free text (exports, logs): phone numbers, e-mails, IBANs, names.

Patterns target what French customers type: ``06 12 34 56 78``, ``+33 6 12 34 56 78``,
``0033612345678``, ``FR76 3000 6000 0112 3456 7890 189``, ``jean.dupont@example.fr`` and
"je m'appelle Jean Dupont". Redaction errs on the side of removing too much.
"""

from __future__ import annotations

import re

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# IBAN: country code, 2 check digits, then 11 to 30 alphanumerics, optionally grouped by 4.
IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b", re.IGNORECASE)
# French numbers, national (0X) or international (+33 / 0033, optional "(0)"), any separators.
PHONE_RE = re.compile(r"(?<![\w+])(?:(?:\+|00)33[\s.-]?(?:\(0\)[\s.-]?)?|0)[1-9](?:[\s.-]?\d{2}){4}(?!\d)")
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


def redact(text: str | None) -> str:
    """Return ``text`` with e-mails, IBANs, French phone numbers and introduced names masked."""
    if not text:
        return ""
    for pattern, placeholder in REDACTIONS:
        text = pattern.sub(placeholder, text)
    return NAME_RE.sub(lambda m: f"{m.group('lead')}[nom]", text)
