"""Waiters served in arrival order: a queue of free items (answer worker processes) and a semaphore on it."""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class _Waiter:
    __slots__ = ("event", "item", "served")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.item = None
        self.served = False


class FairQueue(Generic[T]):
    """Free items handed out in the order they were asked for.

    threading.Semaphore (and queue.Queue) let a newcomer take an item freed for a woken waiter, so
    under a burst some requests wait many turns (seconds at the tail of a 50-customer load) while
    others pass at once. A freed item goes straight to the first waiter, and only that thread wakes."""

    def __init__(self, items=()) -> None:
        self._free: deque[T] = deque(items)
        self._waiting: deque[_Waiter] = deque()
        self._lock = threading.Lock()

    def get(self, timeout: float | None = None) -> T | None:
        """The next free item, once every earlier caller has had one; None after ``timeout`` seconds."""
        with self._lock:
            if self._free and not self._waiting:
                return self._free.popleft()
            waiter = _Waiter()
            self._waiting.append(waiter)
        waiter.event.wait(timeout)
        with self._lock:
            if not waiter.served:  # timed out before an item came
                self._waiting.remove(waiter)
                return None
        return waiter.item

    def put(self, item: T) -> None:
        """Give an item back (or add a new one): to the first waiter, if any."""
        with self._lock:
            if not self._waiting:
                self._free.append(item)
                return
            waiter = self._waiting.popleft()
            waiter.item, waiter.served = item, True
        waiter.event.set()


class FairSlots(FairQueue[int]):
    """A semaphore that serves waiters in arrival order: ``with slots:`` holds one of ``slots``."""

    def __init__(self, slots: int) -> None:
        super().__init__([0] * slots)

    def __enter__(self) -> None:
        self.get()

    def __exit__(self, *exc) -> None:
        self.put(0)
