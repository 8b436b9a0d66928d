"""The one redaction of personal data in free text: CSV exports, every log line and training datasets.

Phone numbers, e-mails, IBANs, Mastodon handles and names are masked. Patterns target what French
customers type: ``06 12 34 56 78``, ``+33 6 12 34 56 78``, ``0033612345678``,
``FR76 3000 6000 0112 3456 7890 189``, ``jean.dupont@example.fr``, ``@jean@mastodon.social`` and
"je m'appelle Jean Dupont"; known names (customers, contact forms) are passed in. Redaction errs on
the side of removing too much. ``RedactingFilter`` applies it to log records.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable

# A Mastodon handle "@user@instance.tld" (before e-mails, which would take its "user@instance" part).
HANDLE_RE = re.compile(r"(?<![\w@])@[\w.]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# IBAN: country code, 2 check digits, then 11 to 30 alphanumerics, compact or grouped by 4 (the grouping
# stops the match from swallowing the next word: "FR76 3000 ... 189 merci").
# A 32-hex conversation id (in log lines) is not an IBAN even when it starts like one ("de12…").
IBAN_RE = re.compile(
    r"\b(?![0-9a-f]{32}\b)[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b", re.IGNORECASE
)
# French numbers, national (0X) or international (+33 / 0033, optional "(0)"), any separators.
# Digits may be grouped any way (06 12 34 56 78, 0612 345 678, 06 1234 5678), one separator at most between two.
PHONE_RE = re.compile(r"(?<![\w+])(?:(?:\+|00)33[\s.-]?(?:\(0\)[\s.-]?)?|0)[1-9](?:[\s.-]?\d){8}(?!\d)")
# Any other number in compact international form (E.164, "+4915112345678").
INTL_PHONE_RE = re.compile(r"(?<![\w+])\+[1-9]\d{7,14}(?!\d)")
# "je m'appelle Jean Dupont", "mon nom est Martin", "je suis Mme Durand": the capitalised words after.
NAME_RE = re.compile(
    r"(?P<lead>\b(?i:je m['’]appelle|mon nom est|mon nom c['’]est|je suis (?:M\.|Mme|Mlle|monsieur|madame))\s+)"
    r"(?P<name>[A-ZÀ-Ý][\w'’-]+(?:\s+[A-ZÀ-Ý][\w'’-]+){0,2})"
)

REDACTIONS = (
    (HANDLE_RE, "[compte]"),
    (EMAIL_RE, "[email]"),
    (IBAN_RE, "[iban]"),
    (PHONE_RE, "[téléphone]"),
    (INTL_PHONE_RE, "[téléphone]"),
)


def redact(text: str | None, names: Iterable[str] = ()) -> str:
    """Return ``text`` with handles, e-mails, IBANs, French phone numbers and introduced names masked.

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


@functools.lru_cache(maxsize=1024)
def _cached_name_pattern(names: tuple[str, ...]) -> re.Pattern | None:
    return _build_name_pattern(names)


def name_pattern(names: Iterable[str]) -> re.Pattern | None:
    """One case-insensitive pattern matching the given names and their parts (longest first).

    Patterns are cached: an export redacts thousands of rows with the same few names.
    """
    return _cached_name_pattern(tuple(sorted({n for n in names if n})))


def _build_name_pattern(names: tuple[str, ...]) -> re.Pattern | None:
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


# Secret query parameters of logged URLs (uvicorn's access log): Mastodon contact-link tokens, keys.
SECRET_PARAM_RE = re.compile(r"(?i)\b((?:token|key|access_token|conversation_key)=)[^&\s\"']+")


class RedactingFilter(logging.Filter):
    """Masks personal data in every record it sees: message, arguments and exception text.

    Installed once, on the app's log handler (see ``logsetup.configure_logging``), so records from
    every logger (ours, uvicorn's, libraries') pass through it. Names a caller knows go in
    ``extra={"names": [...]}``; introduced names ("je m'appelle …") are found without help.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        names = getattr(record, "names", ()) or ()
        try:
            message = record.getMessage()
        except Exception:  # a malformed call (wrong arguments): never let its raw pieces through
            record.msg, record.args = f"[unformattable log message from {record.pathname}:{record.lineno}]", None
            return True
        clean = redact_log_text(message, names)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_log_text(record.exc_text, names)
        if record.stack_info:
            record.stack_info = redact_log_text(record.stack_info, names)
        return True


def redact_log_text(text: str, names: Iterable[str] = ()) -> str:
    """``redact`` plus secret URL parameters, for log lines."""
    return SECRET_PARAM_RE.sub(r"\1***", redact(text, names)) if text else text
