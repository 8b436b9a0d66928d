"""Background loading of the generative backend and its status, shown in the chat tab."""

from __future__ import annotations

import logging
import threading
import time

from rag.llm.base import GenerationError, LLMBackend, build_backend
from settings import LLMConfig

log = logging.getLogger(__name__)

STATUS_TEXT = {
    "off": "Modèle génératif : non chargé (mode extractif)",
    "loading": "Modèle génératif : chargement… (réponses extractives en attendant)",
    "ready": "Modèle génératif : prêt",
    "unavailable": "Modèle génératif : indisponible (mode extractif)",
}


class ModelManager:
    """Owns one backend; loads it once on a daemon thread so the app answers (extractively) meanwhile."""

    def __init__(self, config: LLMConfig, backend: LLMBackend | None = None) -> None:
        self.config = config
        self._backend = backend
        self.state = "off"
        self.error: str | None = None
        self.load_seconds: float | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()

    def start(self) -> threading.Thread | None:
        """Begin loading in the background (no-op when already loading or loaded)."""
        with self._lock:
            if self.state != "off":
                return None
            self.state = "loading"
        thread = threading.Thread(target=self._load, name="llm-load", daemon=True)
        thread.start()
        return thread

    def _load(self) -> None:
        start = time.perf_counter()
        try:
            backend = self._backend or build_backend(self.config)
            backend.load()
            self._backend = backend
            self.load_seconds = round(time.perf_counter() - start, 2)
            self.state = "ready"
            log.info("generative backend %s ready in %.1fs", backend.describe(), self.load_seconds)
        except GenerationError as exc:
            self.error, self.state = str(exc), "unavailable"
            log.warning("generative backend unavailable: %s", exc)
        except Exception as exc:  # any loader bug must leave the app in extractive mode, not crash it
            self.error, self.state = f"{type(exc).__name__}: {exc}", "unavailable"
            log.exception("generative backend failed to load")
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Start loading if needed and block until done; True when the backend is ready."""
        self.start()
        self._done.wait(timeout)
        return self.state == "ready"

    def close(self) -> None:
        """Stop using the backend and free it (waits for a generation in flight to stop)."""
        backend, self._backend = self._backend, None
        self.state = "off" if self.state == "ready" else self.state
        if backend is not None:
            backend.close()

    @property
    def backend(self) -> LLMBackend | None:
        """The loaded backend, or None while loading / when unavailable."""
        return self._backend if self.state == "ready" else None

    def status_text(self) -> str:
        """French one-liner for the chat tab."""
        return STATUS_TEXT[self.state]
