"""Which model answers in the chat: the settings by default, or a promoted candidate.

Only admins promote (an adapter from the training tab, or any candidate of an evaluation run);
trainers and evaluators PROPOSE, and an admin accepts or rejects the proposal in the evaluation
tab (the role is checked by the callers, server-side). The choice is kept in app_state so a
restart keeps it. Promotions form a stack: rollback pops the last one and the previous choice (or
the settings) answers again. Every proposal, promotion and rollback is appended to a journal
(who, when, what, from which evaluation). An HTTP endpoint is chosen by its name in the admins'
allow-list, never by URL, so a choice never carries a URL or a key.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any

from pydantic import ValidationError

from settings import LLMConfig, UnknownEndpoint

log = logging.getLogger(__name__)
STATE_KEY = "chat_model"
JOURNAL_LIMIT = 200  # entries kept in the journal (oldest dropped)
PROPOSALS_LIMIT = 50  # pending proposals kept (oldest dropped)
MODES = ("extractive", "generative", "hybrid")
# LLMConfig fields a choice may set; everything else (timeouts, prompt sizes, threads) stays from settings.
CHOICE_FIELDS = (
    "backend", "model", "adapter", "quantization", "endpoint", "max_new_tokens", "temperature", "repetition_penalty",
)  # fmt: skip
# Set by admins only (settings): a choice or a candidate naming a URL or a key is refused.
ENDPOINT_FIELDS = ("base_url", "endpoint_model", "api_key", "endpoints")
BY_NAME = ("une URL, un modèle d'endpoint ou une clé ne se choisissent pas ici : désignez un endpoint autorisé par son "
           "nom (endpoint: <nom>) / URLs and keys cannot be chosen here: name an allow-listed endpoint.")  # fmt: skip


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
    if set(llm) & set(ENDPOINT_FIELDS):
        raise SelectionError(BY_NAME)
    unknown = sorted(set(llm) - set(CHOICE_FIELDS))
    if unknown:
        raise SelectionError(f"réglages de modèle non modifiables ici : {', '.join(unknown)}.")
    # Values are validated here; whether a named endpoint exists is checked against the settings on use.
    llm_config(LLMConfig(), {k: v for k, v in llm.items() if k != "endpoint"})
    return {"label": label, "answer_mode": answer_mode, "llm": llm, "origin": origin, **extra}


def llm_config(base: LLMConfig, overrides: dict) -> LLMConfig:
    """The settings' LLM config with a choice's overrides, validated by the same pydantic model.

    URLs and keys only come from `base` (the settings): overrides naming one are refused, a key
    already detached from its URL stays detached, and an HTTP endpoint must be in the allow-list.
    """
    if set(overrides) & set(ENDPOINT_FIELDS):
        raise SelectionError(BY_NAME)
    try:
        config = LLMConfig.model_validate({**base.model_dump(), **overrides, "api_key": base.bound_api_key()})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))} : {e['msg']}" for e in exc.errors())
        raise SelectionError(f"réglages de modèle invalides ({problems}).") from exc
    if config.backend == "openai":
        try:
            config.endpoint_entry()
        except UnknownEndpoint as exc:
            raise SelectionError(str(exc)) from exc
    return config


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
    """Promote / roll back the chat's model, record proposals, persist it all, apply it to the answer engine.

    Callers check the role (admins promote, accept and roll back; trainers and evaluators propose).
    """

    def __init__(self, state, engine=None) -> None:
        self.state = state  # storage.AppStateRepository
        self.engine = engine  # rag.answer.AnswerEngine (None: record only, e.g. in a CLI)
        self.applied: dict | None = None  # the choice THIS process serves (None: the settings)
        self.on_change = None  # called after a promotion/rollback is saved and applied here (tells other replicas)
        self._lock = threading.Lock()

    def _read(self) -> dict:
        data = self.state.get(STATE_KEY) or {}
        if "stack" not in data:  # nothing promoted yet
            data = {"stack": [], "journal": []}
        data.setdefault("proposals", [])
        return data

    def _check(self, choice: dict) -> dict:
        """A choice validated, its endpoint (if any) checked against the engine's settings."""
        choice = make_choice(**{k: v for k, v in choice.items() if k not in ("promoted_at", "promoted_by")})
        if self.engine is not None and choice["answer_mode"] != "extractive":
            llm_config(self.engine.config.llm, choice["llm"])
        return choice

    @staticmethod
    def _log(data: dict, entry: dict) -> None:
        data["journal"] = [*data["journal"], entry][-JOURNAL_LIMIT:]

    def proposals(self) -> list[dict]:
        """Pending proposals, newest first: {id, at, by, note, choice}."""
        return list(reversed(self._read()["proposals"]))

    def propose(self, choice: dict, by: str, note: str = "") -> dict:
        """Record `choice` for an admin to accept (what trainers and evaluators do instead of promoting)."""
        choice = self._check(choice)
        with self._lock:
            data = self._read()
            proposal = {"id": secrets.token_hex(4), "at": now_iso(), "by": by, "note": note, "choice": choice}
            data["proposals"] = [*data["proposals"], proposal][-PROPOSALS_LIMIT:]
            self._log(data, {"action": "propose", "at": proposal["at"], "by": by, "choice": choice,
                             "previous": data["stack"][-1] if data["stack"] else None, "note": note})  # fmt: skip
            self.state.set(STATE_KEY, data)
        return proposal

    def _take(self, proposal_id: str, by: str, action: str) -> dict:
        with self._lock:
            data = self._read()
            proposal = next((p for p in data["proposals"] if p["id"] == proposal_id), None)
            if proposal is None:
                raise SelectionError("proposition introuvable (déjà traitée ?).")
            data["proposals"] = [p for p in data["proposals"] if p["id"] != proposal_id]
            if action == "reject":
                self._log(data, {"action": "reject", "at": now_iso(), "by": by, "choice": proposal["choice"],
                                 "previous": None, "note": f"proposition de {proposal['by']}"})  # fmt: skip
            self.state.set(STATE_KEY, data)
        return proposal

    def accept(self, proposal_id: str, by: str) -> dict:
        """Promote a pending proposal (admins); returns the choice now in use."""
        with self._lock:
            proposal = next((p for p in self._read()["proposals"] if p["id"] == proposal_id), None)
        if proposal is None:
            raise SelectionError("proposition introuvable (déjà traitée ?).")
        note = f"proposition de {proposal['by']} {proposal['note']}".strip()
        choice = self.promote(proposal["choice"], by=by, note=note, proposed_by=proposal["by"])
        self._take(proposal_id, by, "accept")
        return choice

    def reject(self, proposal_id: str, by: str) -> dict:
        """Drop a pending proposal (admins); recorded in the journal."""
        return self._take(proposal_id, by, "reject")

    def current(self) -> dict | None:
        """The promoted choice in use, or None when the settings decide."""
        stack = self._read()["stack"]
        return stack[-1] if stack else None

    def journal(self) -> list[dict]:
        """Promotions and rollbacks, newest first."""
        return list(reversed(self._read()["journal"]))

    def promote(self, choice: dict, by: str, note: str = "", proposed_by: str | None = None) -> dict:
        """Make `choice` the chat's model (validated first; admins only); the previous one can be restored."""
        choice = self._check(choice)
        with self._lock:
            data = self._read()
            previous = data["stack"][-1] if data["stack"] else None
            choice = {**choice, "promoted_at": now_iso(), "promoted_by": by}
            if proposed_by:
                choice["proposed_by"] = proposed_by
            data["stack"].append(choice)
            self._log(data, {"action": "promote", "at": choice["promoted_at"], "by": by, "choice": choice,
                             "previous": previous, "note": note})  # fmt: skip
            self.state.set(STATE_KEY, data)
        self.apply()
        self._changed()
        return choice

    def rollback(self, by: str) -> dict | None:
        """Undo the last promotion; returns the choice now in use (None: back to the settings)."""
        with self._lock:
            data = self._read()
            if not data["stack"]:
                raise SelectionError("aucune promotion à annuler : le chat utilise déjà les réglages par défaut.")
            undone = data["stack"].pop()
            restored = data["stack"][-1] if data["stack"] else None
            self._log(data, {"action": "rollback", "at": now_iso(), "by": by, "choice": restored, "previous": undone,
                             "note": ""})  # fmt: skip
            self.state.set(STATE_KEY, data)
        self.apply()
        self._changed()
        return restored

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def apply(self) -> None:
        """Point the answer engine at the current choice (models load in the background)."""
        if self.engine is None:
            return
        choice = self.current()
        base = self.engine.config
        if choice is None:
            self.engine.use_model(base.answer_mode, base.llm)
            self.applied = None
            return
        try:
            llm = llm_config(base.llm, choice.get("llm") or {})
        except SelectionError as exc:  # e.g. a choice recorded before the endpoint allow-list, naming a URL
            log.warning("promoted chat model %r refused, the settings answer: %s", choice.get("label"), exc)
            self.engine.use_model(base.answer_mode, base.llm)
            self.applied = None
            return
        self.engine.use_model(choice["answer_mode"], llm)
        self.applied = choice
