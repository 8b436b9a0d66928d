"""The small LLM backend interface every generative implementation follows (chosen by config)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator

from settings import LLMConfig


class GenerationError(RuntimeError):
    """A backend failed to load or to generate; the message is safe to log (no secrets)."""


class LLMBackend(ABC):
    """Loads once, then streams chat completions as text deltas.

    `stop` is checked between tokens so a caller that gave up (timeout, low confidence) frees
    the backend quickly.
    """

    name: str = "llm"

    def __init__(self, config: LLMConfig) -> None:
        self.config = config

    @abstractmethod
    def load(self) -> None:
        """Make the backend ready (weights in memory, or endpoint reachable); raise GenerationError."""

    @abstractmethod
    def stream(self, messages: list[dict], stop: threading.Event | None = None) -> Iterator[str]:
        """Yield the reply to chat `messages` piece by piece (greedy unless temperature > 0)."""

    def close(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Release the model once any generation in flight has stopped (default: nothing to free)."""

    def describe(self) -> str:
        """Short human description for the status line and logs (never includes secrets)."""
        return f"{self.name}:{self.config.model}"


def build_backend(config: LLMConfig) -> LLMBackend:
    """The implementation named by `config.backend` (heavy imports happen inside each module's load)."""
    if config.backend == "openai":
        from rag.llm.http import OpenAICompatibleBackend

        return OpenAICompatibleBackend(config)
    if config.backend == "llamacpp":
        from rag.llm.llamacpp import LlamaCppBackend

        return LlamaCppBackend(config)
    from rag.llm.local import TransformersBackend

    return TransformersBackend(config)
