"""LLM endpoint allow-list: each key goes only to its own endpoint; URLs are never chosen outside the settings.

The peers are real loopback HTTP servers that record the Authorization header of every request.
"""

from __future__ import annotations

import json

import pytest

from rag.llm.base import GenerationError
from rag.llm.http import OpenAICompatibleBackend
from rag.llm.selection import ChatModelService, SelectionError, llm_config, make_choice
from settings import LLMConfig, UnknownEndpoint, get_settings
from storage import AppStateRepository

MESSAGES = [{"role": "user", "content": "Bonjour"}]


def two_endpoints(default_url: str, partner_url: str, **changes) -> LLMConfig:
    """The settings' endpoint ('default', key sk-default) plus an allow-listed 'partner' (key sk-partner)."""
    partner = {"name": "partner", "base_url": partner_url, "model": "partner-model", "api_key": "sk-partner"}
    return LLMConfig(backend="openai", base_url=default_url, api_key="sk-default", endpoints=[partner], **changes)


def test_each_endpoint_receives_its_own_key_only(llm_peer) -> None:
    default, partner = llm_peer(), llm_peer()
    config = two_endpoints(default.url, partner.url, endpoint="partner")
    backend = OpenAICompatibleBackend(config)
    backend.load()
    assert "".join(backend.stream(MESSAGES)).strip()
    assert partner.authorizations == ["Bearer sk-partner", "Bearer sk-partner"] and default.requests == []
    assert json.loads(partner.requests[-1]["body"])["model"] == "partner-model"
    assert "sk-" not in backend.describe() and "sk-" not in repr(config)

    OpenAICompatibleBackend(config.model_copy(update={"endpoint": "default"})).load()
    assert default.authorizations == ["Bearer sk-default"] and len(partner.requests) == 2


def test_a_key_never_follows_a_changed_url(llm_peer) -> None:
    """The attack: keep the settings' key, swap the URL. The rogue peer is reached without any key."""
    rogue = llm_peer()
    config = LLMConfig(backend="openai", base_url="http://127.0.0.1:9/v1", api_key="sk-live-secret")
    OpenAICompatibleBackend(config.model_copy(update={"base_url": rogue.url})).load()
    assert rogue.authorizations == [None]


def test_unknown_endpoint_name_is_refused_before_any_request() -> None:
    with pytest.raises(GenerationError, match="inconnu"):
        OpenAICompatibleBackend(LLMConfig(backend="openai", endpoint="nowhere"))
    with pytest.raises(UnknownEndpoint, match="allow-list"):
        LLMConfig().endpoint_for_url("http://evil.example/v1")
    assert LLMConfig().endpoint_for_url("http://127.0.0.1:8000/v1/") == "default"


def test_choices_name_endpoints_never_urls_or_keys(llm_peer) -> None:
    rogue = llm_peer()
    base = two_endpoints("http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1")
    for llm in ({"backend": "openai", "base_url": rogue.url}, {"backend": "openai", "api_key": "x"},
                {"endpoint_model": "m"}):  # fmt: skip
        with pytest.raises(SelectionError, match="endpoint autorisé"):
            make_choice("rogue", "hybrid", llm)
        with pytest.raises(SelectionError, match="endpoint autorisé"):
            llm_config(base, llm)
    with pytest.raises(SelectionError, match="inconnu"):
        llm_config(base, {"backend": "openai", "endpoint": "nowhere"})
    chosen = llm_config(base, make_choice("p", "hybrid", {"backend": "openai", "endpoint": "partner"})["llm"])
    assert chosen.endpoint_entry().base_url == "http://127.0.0.1:10/v1"
    assert chosen.endpoint_entry().api_key.get_secret_value() == "sk-partner"
    moved = base.model_copy(update={"base_url": rogue.url})
    assert llm_config(moved, {"backend": "openai"}).api_key is None  # a detached key stays detached
    assert rogue.requests == []


def test_endpoints_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("MOBILIA_RAG__LLM__ENDPOINTS",
                       '[{"name": "vllm", "base_url": "https://llm.example/v1", "model": "m", "api_key": "sk-v"}]')  # fmt: skip
    llm = get_settings().rag.llm
    assert list(llm.endpoint_entries()) == ["default", "vllm"]
    assert llm.endpoint_entry("vllm").api_key.get_secret_value() == "sk-v" and "sk-v" not in repr(llm)
    monkeypatch.setenv("MOBILIA_RAG__LLM__ENDPOINTS", '[{"name": "default", "base_url": "https://x.example"}]')
    with pytest.raises(ValueError, match="unique"):
        get_settings()


def test_a_recorded_choice_naming_a_url_is_not_applied(db, engine, llm_peer) -> None:
    """A choice stored before the allow-list (base_url in it) must not point the live chat at that URL."""
    from rag.answer import AnswerEngine

    rogue = llm_peer()
    fresh = AnswerEngine(engine.config, engine.embedder)
    state = AppStateRepository(db)
    legacy = {"label": "rogue", "answer_mode": "hybrid", "origin": "evaluation:old",
              "llm": {"backend": "openai", "base_url": rogue.url, "endpoint_model": "x"}}  # fmt: skip
    state.set("chat_model", {"stack": [legacy], "journal": []})
    ChatModelService(state, fresh).apply()
    assert fresh.answer_mode == engine.config.answer_mode and fresh.llm.config == engine.config.llm
    assert rogue.requests == []
