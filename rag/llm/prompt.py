"""French RAG prompt (retrieved KB entries + recent turns) and the number/price post-check."""

from __future__ import annotations

import re
import unicodedata

SYSTEM_PROMPT = (
    "Tu es l'assistant du service client Free Mobile. Réponds en français, poliment et en 2 à 4 phrases, "
    "UNIQUEMENT à partir des extraits de la base d'aide fournis. Cite la source de chaque information entre "
    "crochets, par exemple [fac-001]. N'invente jamais de prix, de montant, de délai ni de chiffre : recopie "
    "exactement ceux des extraits. Si les extraits ne permettent pas de répondre, dis-le simplement."
)

# A number: digits with optional thousands spaces and a decimal part, then an optional euro sign.
_NUMBER = re.compile(r"(?<![\w-])\d+(?:[ \u00a0\u202f]\d{3})*(?:[.,]\d+)?(?:\s?€)?")
_CITATION = re.compile(r"\[([\w.-]+)\]")


def _entry_text(entry, max_chars: int) -> str:
    text = " ".join(entry.answer.split())
    return text if len(text) <= max_chars else text[: max_chars - 1].rsplit(" ", 1)[0] + "…"


def build_context(entries: list, max_chars: int = 700) -> str:
    """The retrieved entries as `[id] title: text` blocks, best first."""
    return "\n".join(f"[{e.id}] {e.title} : {_entry_text(e, max_chars)}" for e in entries)


def build_messages(
    question: str, entries: list, history: list[tuple[str, str]] | None = None, max_chars: int = 700
) -> list[dict]:
    """Chat messages: system rules, the last (question, answer) turns, then context + question.

    The system prompt comes first and never changes, so runtimes that cache a prompt prefix
    (llama.cpp, KV reuse) skip re-reading it on every question.
    """
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for user, assistant in history or []:
        messages.append({"role": "user", "content": user})
        messages.append({"role": "assistant", "content": assistant})
    context = build_context(entries, max_chars)
    messages.append(
        {"role": "user", "content": f"Extraits de la base d'aide :\n{context}\n\nQuestion du client : {question}"}
    )
    return messages


def _normalize_number(raw: str) -> str:
    value = re.sub(r"[\s\u00a0\u202f€]", "", raw).replace(",", ".")
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    return value.lstrip("0") or "0"


def numbers_in(text: str) -> set[str]:
    """Normalized numbers of a text ("2,99 €" and "2.99" are the same number)."""
    text = unicodedata.normalize("NFKC", _CITATION.sub(" ", text))
    return {_normalize_number(m.group()) for m in _NUMBER.finditer(text)}


def unsupported_numbers(generated: str, context: str) -> list[str]:
    """Numbers or prices of the generated text that the retrieved context does not contain."""
    allowed = numbers_in(context)
    return sorted(n for n in numbers_in(generated) if n not in allowed)


def cited_ids(text: str) -> list[str]:
    """KB ids cited as [id] in a generated answer, in order of first appearance."""
    seen: list[str] = []
    for match in _CITATION.finditer(text):
        if match.group(1) not in seen:
            seen.append(match.group(1))
    return seen


def grounding_ratio(generated: str, context: str) -> float:
    """Share of the generated content words (folded, stemmed) that the context also contains.

    A cheap guard against fluent nonsense from small models: an answer written "from the
    extracts" reuses their words.
    """
    from rag.text import analyze

    words = analyze(_CITATION.sub(" ", generated))
    if not words:
        return 0.0
    known = set(analyze(context))
    return sum(w in known for w in words) / len(words)
