"""Which model answers in the chat: the settings by default, or a promoted candidate.

Trainers promote a candidate (an adapter from the training tab, or any candidate of an
evaluation run); the choice is kept in app_state so a restart keeps it. Promotions form a stack:
rollback pops the last one and the previous choice (or the settings) answers again. Every
promotion and rollback is appended to a journal (who, when, what, from which evaluation).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pydantic import ValidationError

from settings import LLMConfig

STATE_KEY = "chat_model"
JOURNAL_LIMIT = 200  # entries kept in the journal (oldest dropped)
MODES = ("extractive", "generative", "hybrid")
# LLMConfig fields a choice may set; everything else (timeouts, prompt sizes, threads) stays from settings.
CHOICE_FIELDS = (
    "backend", "model", "adapter", "quantization", "base_url", "endpoint_model", "max_new_tokens",
    "temperature", "repetition_penalty",
)  # fmt: skip


class SelectionError(ValueError):
    """A choice that cannot be applied (French message for the UI)."""


def now_iso() -> str:
    """UTC timestamp used in the journal."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def make_choice(label: str, answer_mode: str, llm: dict | None = None, origin: str = "", **extra: Any) -> dict:
    """A validated chat-model choice: the answer mode plus the LLM settings it overrides."""
    if answer_mode not in MODES:
        raise SelectionError(f"mode de réponse inconnu : {answer_mode!r} (attendu : {', '.join(MODES)}).")
    llm = {k: v for k, v in (llm or {}).items() if v is not None}
    unknown = sorted(set(llm) - set(CHOICE_FIELDS))
    if unknown:
        raise SelectionError(f"réglages de modèle non modifiables ici : {', '.join(unknown)}.")
    llm_config(LLMConfig(), llm)  # validates the values
    return {"label": label, "answer_mode": answer_mode, "llm": llm, "origin": origin, **extra}


def llm_config(base: LLMConfig, overrides: dict) -> LLMConfig:
    """The settings' LLM config with a choice's overrides, validated by the same pydantic model."""
    try:
        return LLMConfig.model_validate({**base.model_dump(), **overrides})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))} : {e['msg']}" for e in exc.errors())
        raise SelectionError(f"réglages de modèle invalides ({problems}).") from exc


def describe(choice: dict | None) -> str:
    """French one-liner: what answers in the chat."""
    if not choice:
        return "réglages par défaut de l'application"
    llm = choice.get("llm") or {}
    parts = [choice.get("label") or "?", f"mode {choice['answer_mode']}"]
    if choice["answer_mode"] != "extractive" and llm.get("adapter"):
        parts.append(f"adaptateur {llm['adapter']}")
    return " — ".join(parts)


class ChatModelService:
    """Promote / roll back the chat's model, persist it, and apply it to the answer engine."""

    def __init__(self, state, engine=None) -> None:
        self.state = state  # storage.AppStateRepository
        self.engine = engine  # rag.answer.AnswerEngine (None: record only, e.g. in a CLI)
        self._lock = threading.Lock()

    def _read(self) -> dict:
        data = self.state.get(STATE_KEY) or {}
        if "stack" not in data:  # nothing promoted yet
            data = {"stack": [], "journal": []}
        return data

    def current(self) -> dict | None:
        """The promoted choice in use, or None when the settings decide."""
        stack = self._read()["stack"]
        return stack[-1] if stack else None

    def journal(self) -> list[dict]:
        """Promotions and rollbacks, newest first."""
        return list(reversed(self._read()["journal"]))

    def promote(self, choice: dict, by: str, note: str = "") -> dict:
        """Make `choice` the chat's model (validated first); the previous one can be restored."""
        choice = make_choice(**choice)
        with self._lock:
            data = self._read()
            previous = data["stack"][-1] if data["stack"] else None
            choice = {**choice, "promoted_at": now_iso(), "promoted_by": by}
            data["stack"].append(choice)
            data["journal"] = [*data["journal"], {"action": "promote", "at": choice["promoted_at"], "by": by,
                                                  "choice": choice, "previous": previous, "note": note}]  # fmt: skip
            data["journal"] = data["journal"][-JOURNAL_LIMIT:]
            self.state.set(STATE_KEY, data)
        self.apply()
        return choice

    def rollback(self, by: str) -> dict | None:
        """Undo the last promotion; returns the choice now in use (None: back to the settings)."""
        with self._lock:
            data = self._read()
            if not data["stack"]:
                raise SelectionError("aucune promotion à annuler : le chat utilise déjà les réglages par défaut.")
            undone = data["stack"].pop()
            restored = data["stack"][-1] if data["stack"] else None
            data["journal"] = [*data["journal"], {"action": "rollback", "at": now_iso(), "by": by,
                                                  "choice": restored, "previous": undone, "note": ""}]  # fmt: skip
            data["journal"] = data["journal"][-JOURNAL_LIMIT:]
            self.state.set(STATE_KEY, data)
        self.apply()
        return restored

    def apply(self) -> None:
        """Point the answer engine at the current choice (models load in the background)."""
        if self.engine is None:
            return
        choice = self.current()
        base = self.engine.config
        if choice is None:
            self.engine.use_model(base.answer_mode, base.llm)
        else:
            self.engine.use_model(choice["answer_mode"], llm_config(base.llm, choice.get("llm") or {}))
