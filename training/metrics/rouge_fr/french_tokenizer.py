"""French word tokenizer for ROUGE: keeps accents, splits elisions, keeps decimal numbers whole.

Standard library only, so the rouge_fr metric script imports it relatively (evaluate copies it along) and
``training.scoring`` imports it as a plain module: one tokenizer, no copy.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

# A decimal number ("19,99", "2.5") first, else a run of letters/digits (accented letters are word characters).
# Apostrophes are not word characters, so "l'option" gives "l", "option".
_TOKEN_RE = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+")


@cache
def _stemmer():
    """The Snowball French stemmer of PyStemmer (already used by rag/text.py), built on first use."""
    import Stemmer

    return Stemmer.Stemmer("french")


def french_tokens(text: str, stem: bool = False) -> list[str]:
    """NFC, lower-cased word tokens of `text`; Snowball French stems when `stem` is true."""
    tokens = _TOKEN_RE.findall(unicodedata.normalize("NFC", text).lower())
    return _stemmer().stemWords(tokens) if stem else tokens
