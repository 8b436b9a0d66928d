"""Run a backend on a worker thread with deadlines, so a slow or dead backend never blocks an answer."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

from rag.llm.base import GenerationError, LLMBackend


class GenerationTimeout(GenerationError):
    """No first token within the timeout, or the whole generation ran past its cap."""


def timed_stream(
    backend: LLMBackend,
    messages: list[dict],
    first_token_timeout: float | None,
    max_seconds: float,
    start: float | None = None,
) -> Iterator[str]:
    """Yield the backend's pieces; raise GenerationTimeout/GenerationError, and stop the worker on exit.

    Deadlines count from `start` (default: now), so a caller can include its own earlier work.
    The deadlines are enforced here (queue waits), not by the backend, so the caller gets control
    back within the timeout even when the backend is stuck in a retry or a long prompt read.
    """
    start = time.perf_counter() if start is None else start
    stop = threading.Event()
    pieces: queue.Queue = queue.Queue()
    end = object()

    def work() -> None:
        try:
            for piece in backend.stream(messages, stop):
                pieces.put(piece)
                if stop.is_set():
                    break
        except BaseException as exc:
            pieces.put(exc)
        finally:
            pieces.put(end)

    threading.Thread(target=work, name="llm-stream", daemon=True).start()
    first = True
    try:
        while True:
            limit = max_seconds
            if first and first_token_timeout is not None:
                limit = min(limit, first_token_timeout)
            remaining = limit - (time.perf_counter() - start)
            try:
                item = pieces.get(timeout=max(remaining, 0))
            except queue.Empty:
                what = "no token within" if first else "generation longer than"
                raise GenerationTimeout(f"{what} {limit:g} s") from None
            if item is end:
                return
            if isinstance(item, GenerationError):
                raise item
            if isinstance(item, BaseException):
                raise GenerationError(f"{type(item).__name__}: {item}") from item
            first = False
            yield item
    finally:
        stop.set()
