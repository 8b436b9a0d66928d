"""OpenAI-compatible backend against a real local server: llama-cpp-python's, serving the packaged GGUF."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from rag.llm.base import GenerationError
from rag.llm.http import OpenAICompatibleBackend
from settings import LLMConfig
from tests.conftest import free_port

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")


def config_for(base_url: str, **changes) -> LLMConfig:
    return LLMConfig(
        **{"backend": "openai", "base_url": base_url, "endpoint_model": "smollm2", "max_new_tokens": 12, **changes}
    )


def test_streams_a_chat_completion_from_the_server(llama_server: str) -> None:
    backend = OpenAICompatibleBackend(config_for(llama_server))
    backend.load()
    messages = [{"role": "system", "content": "Réponds en français."}, {"role": "user", "content": "Dis bonjour."}]
    pieces = list(backend.stream(messages))
    assert len(pieces) >= 2 and "".join(pieces).strip()


def test_api_key_is_sent_but_never_logged(llama_server: str, caplog) -> None:
    seen: list[str] = []

    def record(request: httpx.Request) -> None:
        seen.append(request.headers.get("authorization", ""))

    config = config_for(llama_server, api_key="sk-test-secret")
    backend = OpenAICompatibleBackend(config)
    backend.client.event_hooks["request"] = [record]
    with caplog.at_level(logging.DEBUG):
        "".join(backend.stream([{"role": "user", "content": "Bonjour"}]))
    assert seen == ["Bearer sk-test-secret"]
    assert "sk-test-secret" not in caplog.text and "sk-test-secret" not in repr(config)
    assert "sk-test-secret" not in backend.describe()


def test_unreachable_endpoint_raises_after_bounded_retries() -> None:
    backend = OpenAICompatibleBackend(config_for(f"http://127.0.0.1:{free_port()}/v1", retries=2))
    start = time.perf_counter()
    with pytest.raises(GenerationError, match="unreachable: ConnectError"):
        list(backend.stream([{"role": "user", "content": "Bonjour"}]))
    assert time.perf_counter() - start < 3


def test_hybrid_answer_through_the_server_and_fallback_when_it_is_down(engine, llama_server: str) -> None:
    from rag.answer import AnswerEngine
    from rag.llm.manager import ModelManager

    def hybrid(base_url: str) -> AnswerEngine:
        # A short prompt (one entry, cut) keeps this quick on a busy 2-core CI machine.
        llm = config_for(
            base_url, max_new_tokens=24, timeout=120.0, max_seconds=180.0, context_entries=1, context_chars=200
        )
        config = engine.config.model_copy(update={"answer_mode": "hybrid", "llm": llm})
        manager = ModelManager(llm, backend=OpenAICompatibleBackend(llm))
        manager.state = "ready"
        clone = AnswerEngine(config, engine.embedder, llm=manager)
        clone._retriever = engine.retriever
        return clone

    answer = hybrid(llama_server).answer("Comment télécharger ma facture ?")
    assert answer.sources
    # A 135M model may invent a number: then the post-check falls back, which is the point.
    assert answer.mode_used == "generative" or answer.fallback_reason.startswith("low_confidence")
    down = hybrid(f"http://127.0.0.1:{free_port()}/v1").answer("Comment télécharger ma facture ?", timeout=5.0)
    assert down.mode_used == "extractive" and down.fallback_reason.startswith("error: endpoint unreachable")
    assert "Traceback" not in down.text
