"""A semaphore that serves waiters in arrival order (the answer path's CPU-bound steps queue on it)."""

from __future__ import annotations

import threading
from collections import deque


class FairSlots:
    """A semaphore that serves waiters in arrival order.

    threading.Semaphore lets a newcomer take a slot freed for a woken waiter, so under a burst some
    requests wait many turns (seconds at the tail of a 50-customer load) while others pass at once."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiting: deque[object] = deque()
        self._changed = threading.Condition()

    def __enter__(self) -> None:
        with self._changed:
            if self._free and not self._waiting:
                self._free -= 1
                return
            ticket = object()
            self._waiting.append(ticket)
            while not (self._free and self._waiting[0] is ticket):
                self._changed.wait()
            self._waiting.popleft()
            self._free -= 1
            if self._free and self._waiting:
                self._changed.notify_all()

    def __exit__(self, *exc) -> None:
        with self._changed:
            self._free += 1
            self._changed.notify_all()
