"""Generative and hybrid answers: the LLM rewrites a grounded answer from the retrieved entries.

AnswerEngine has already applied the rules (small talk, scope, escalation, confidence) and built
the extractive answer; here only its text changes. Whatever goes wrong (model still loading or
unavailable, error, timeout, a number or price that is not in the retrieved context, a promise
of a hand-off, ticket, callback or refund this turn did not make, an empty reply) the extractive
answer is returned with `fallback_reason` saying why.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import replace

from rag.answer import EMPATHY_TEXT, ESCALATION_TEXT, Answer
from rag.llm.base import GenerationError
from rag.llm.generate import GenerationTimeout, timed_stream
from rag.llm.prompt import build_context, build_messages, cited_ids, grounding_ratio, unsupported_numbers
from rag.promises import find_promises

log = logging.getLogger(__name__)

_CITATION = re.compile(r"\s*\[([\w.-]+)\]")


def _clean_citations(text: str, known: list[str]) -> str:
    """Drop citations of ids that were not retrieved; cite the best entry when nothing is cited."""
    text = _CITATION.sub(lambda m: m.group(0) if m.group(1) in known else "", text).strip()
    if not cited_ids(text):
        text = f"{text} [{known[0]}]"
    return text


def _check_promises(text: str, escalated: bool) -> None:
    """Raise if generated text promises a hand-off, ticket, callback or refund this turn did not make."""
    broken = find_promises(text, escalated=escalated)
    if broken:
        raise ValueError(f"low_confidence: promises an action not taken ({broken[0].kind})")


def _finish(answer: Answer, start: float, **changes) -> Answer:
    final = replace(answer, **changes)
    final.latency_ms = round((time.perf_counter() - start) * 1000, 2)
    return final


def generate_answer(
    engine,
    answer: Answer,
    entries: list,
    empathy: bool,
    question: str,
    history: list[tuple[str, str]] | None,
    mode: str,
    timeout: float | None,
    start: float,
) -> Iterator[str | Answer]:
    """Yield growing text, then the final Answer (generative, or extractive with a fallback reason)."""
    manager = engine.llm
    llm_config = manager.config
    backend = manager.backend
    if backend is None:
        if manager.state == "off":
            manager.start()  # load for the next questions; this one is answered now
        reason = "model_loading" if manager.state == "loading" else f"model_unavailable: {manager.error}"
        yield _finish(answer, start, mode_used="extractive", fallback_reason=reason)
        return

    messages = build_messages(question, entries, history, llm_config.context_chars)
    context = build_context(entries, llm_config.context_chars)
    first_token_timeout = (timeout if timeout is not None else llm_config.timeout) if mode == "hybrid" else None
    prefix = EMPATHY_TEXT + "\n\n" if empathy else ""
    text = ""
    try:
        for piece in timed_stream(backend, messages, first_token_timeout, llm_config.max_seconds, start=start):
            text += piece
            # Check the numbers already complete (up to the last space) so a wrong price is never shown long.
            settled = text[: max(text.rfind(" "), 0)]
            bad = unsupported_numbers(settled, context)
            if bad:
                raise ValueError(f"low_confidence: numbers not in the retrieved context: {', '.join(bad)}")
            _check_promises(settled, answer.needs_escalation)
            yield prefix + text
        bad = unsupported_numbers(text, context)
        if bad:
            raise ValueError(f"low_confidence: numbers not in the retrieved context: {', '.join(bad)}")
        _check_promises(text, answer.needs_escalation)
        if len(text.strip()) < 10:
            raise ValueError("low_confidence: empty generation")
        grounding = grounding_ratio(text, f"{context} {question}")
        if grounding < llm_config.min_grounding:
            raise ValueError(f"low_confidence: weakly grounded ({grounding:.2f} < {llm_config.min_grounding:g})")
    except GenerationTimeout as exc:
        yield _finish(answer, start, mode_used="extractive", fallback_reason=f"timeout: {exc}", draft=text or None)
        return
    except GenerationError as exc:
        log.warning("generation failed, extractive answer used: %s", exc)
        yield _finish(answer, start, mode_used="extractive", fallback_reason=f"error: {exc}", draft=text or None)
        return
    except ValueError as exc:
        yield _finish(answer, start, mode_used="extractive", fallback_reason=str(exc), draft=text or None)
        return
    parts = [prefix + _clean_citations(text, [e.id for e in entries])]
    if answer.needs_escalation:
        parts.append(ESCALATION_TEXT)
    yield _finish(answer, start, text="\n\n".join(parts), mode_used="generative")
