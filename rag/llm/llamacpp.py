"""llama.cpp backend (llama-cpp-python, in-process) on a GGUF file: the packaged SmolLM2 by default.

The GGUF stays quantized (Q4_1), which is what makes CPU generation fast; llama.cpp also keeps
the KV cache of the previous prompt, so the fixed system prompt is not re-read on every question.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator

from rag.llm.base import GenerationError, LLMBackend
from rag.llm.gguf import gguf_path_for

log = logging.getLogger(__name__)


class LlamaCppBackend(LLMBackend):
    """Streams chat completions from llama_cpp.Llama (one generation at a time)."""

    name = "llamacpp"

    def __init__(self, config, n_ctx: int = 2048) -> None:
        super().__init__(config)
        self.n_ctx = n_ctx
        self.llm = None
        self._lock = threading.Lock()

    def load(self) -> None:
        try:
            from llama_cpp import Llama

            path = gguf_path_for(self.config.model)
            threads = self.config.threads or os.cpu_count()
            self.llm = Llama(
                model_path=str(path), n_ctx=self.n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False
            )
        except (ImportError, OSError, ValueError, RuntimeError) as exc:
            raise GenerationError(f"cannot load {self.config.model} with llama.cpp: {exc}") from exc
        log.info("llama.cpp model ready: %s", path.name)

    def stream(self, messages: list[dict], stop: threading.Event | None = None) -> Iterator[str]:
        if self.llm is None:
            raise GenerationError("model not loaded")
        with self._lock:
            try:
                chunks = self.llm.create_chat_completion(
                    messages=messages,
                    max_tokens=self.config.max_new_tokens,
                    temperature=self.config.temperature,
                    repeat_penalty=self.config.repetition_penalty,
                    stream=True,
                )
                for chunk in chunks:
                    if stop is not None and stop.is_set():
                        break
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
            except (RuntimeError, ValueError) as exc:
                raise GenerationError(f"llama.cpp generation failed: {exc}") from exc

    def close(self) -> None:
        """Free the model after the generation in flight stops (exiting while C code runs would crash)."""
        with self._lock:
            if self.llm is not None:
                self.llm.close()
                self.llm = None
