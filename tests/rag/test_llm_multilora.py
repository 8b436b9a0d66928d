"""Promoting an adapter served by name by an OpenAI-compatible multi-model server (vLLM `--lora-modules`).

The peer is llama-cpp-python's server with a `--config_file` of two model aliases (what vLLM's
`--lora-modules support-v1=... support-v2=...` names are to its clients). The admins' allow-list
has one endpoint per alias; promoting one, then the other, then rolling back makes the chat's
requests name that alias, and the server switches to it (each alias loads with its own context
size, written in the server's log).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from settings import LLMConfig, LLMEndpoint
from tests.conftest import free_port, llama_cpp_server

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
ALIASES = {"mobilia-lora-v1": 1024, "mobilia-lora-v2": 1536}  # alias -> n_ctx (tells the loads apart in the log)


@pytest.fixture(scope="module")
def multi_server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """llama-cpp-python's OpenAI-compatible server with two model aliases; yields (/v1 URL, log file)."""
    from rag.llm.gguf import packaged_gguf_path

    folder = tmp_path_factory.mktemp("multi-llm")
    port = free_port()
    models = [{"model": str(packaged_gguf_path()), "model_alias": alias, "n_ctx": n_ctx, "n_threads": 1}
              for alias, n_ctx in ALIASES.items()]  # fmt: skip
    config = folder / "models.json"
    config.write_text(json.dumps({"host": "127.0.0.1", "port": port, "models": models}), encoding="utf-8")
    log_path = folder / "server.log"
    with llama_cpp_server(["--config_file", str(config)], port, log_path) as base_url:
        yield base_url, log_path


def loaded_contexts(log_path: Path) -> list[int]:
    """The context size of each model load, in order (one line per load in llama.cpp's log)."""
    return [int(n) for n in re.findall(r"^llama_context: n_ctx\s+=\s+(\d+)$", log_path.read_text(), re.M)]


def test_promotion_selects_the_adapter_the_server_serves_by_name(multi_server, engine, db) -> None:
    from rag.answer import AnswerEngine
    from rag.llm.selection import ChatModelService, SelectionError
    from storage import AppStateRepository

    base_url, log_path = multi_server
    served = httpx.get(f"{base_url}/models", timeout=10).json()
    assert sorted(m["id"] for m in served["data"]) == sorted(ALIASES)
    # What admins configure: one allow-listed endpoint per adapter name of the server.
    llm = LLMConfig(backend="openai", endpoints=[
        LLMEndpoint(name="support-v1", base_url=base_url, model="mobilia-lora-v1"),
        LLMEndpoint(name="support-v2", base_url=base_url, model="mobilia-lora-v2"),
    ], max_new_tokens=8, request_timeout=120, timeout=120, max_seconds=180, context_entries=1, context_chars=200)  # fmt: skip
    chat = AnswerEngine(engine.config.model_copy(update={"answer_mode": "extractive", "llm": llm}), engine.embedder)
    chat._retriever = engine.retriever
    models = ChatModelService(AppStateRepository(db), chat)
    requested: list[str] = []
    answered: list[str] = []

    def ask() -> None:
        """One chat answer; the request's model and the model of the server's stream are recorded."""
        assert chat.llm.wait(120), chat.llm.error
        client = chat.llm.backend.client

        def on_response(response: httpx.Response) -> None:
            response.read()  # the backend then reads the stream from memory
            chunks = [json.loads(line[5:]) for line in response.text.splitlines()
                      if line.startswith("data:") and line[5:].strip() != "[DONE]"]  # fmt: skip
            answered.extend({c["model"] for c in chunks if "model" in c})

        client.event_hooks = {"request": [lambda r: requested.append(json.loads(r.content)["model"])],
                              "response": [on_response]}  # fmt: skip
        answer = chat.answer("Comment télécharger ma facture ?")
        assert answer.sources  # answered from the KB, generatively or by the extractive fallback

    def promote(endpoint: str) -> None:
        models.promote({"label": f"adaptateur {endpoint}", "answer_mode": "generative",
                        "llm": {"backend": "openai", "endpoint": endpoint}}, by="admin1")  # fmt: skip

    promote("support-v1")
    ask()
    promote("support-v2")
    ask()
    models.rollback(by="admin1")  # back to v1
    ask()
    assert requested == ["mobilia-lora-v1", "mobilia-lora-v2", "mobilia-lora-v1"]
    assert answered == requested
    # The server loaded v1 at start, then switched to each alias the requests named.
    assert loaded_contexts(log_path) == [ALIASES[a] for a in ["mobilia-lora-v1", *requested[1:]]]
    assert models.current()["llm"] == {"backend": "openai", "endpoint": "support-v1"}

    # A promotion names an allow-listed endpoint; a model name or URL of its own is refused.
    for llm_choice in ({"backend": "openai", "endpoint": "mobilia-lora-v3"},
                       {"backend": "openai", "endpoint_model": "mobilia-lora-v2"}):  # fmt: skip
        with pytest.raises(SelectionError):
            models.promote({"label": "x", "answer_mode": "generative", "llm": llm_choice}, by="admin1")
