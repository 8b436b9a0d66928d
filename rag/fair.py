"""Waiters served in arrival order: a queue of free items (answer worker processes) and a semaphore on it."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Waiter:
    __slots__ = ("item", "served", "wake")

    def __init__(self, wake: Callable[[], None]) -> None:
        self.wake = wake  # called (outside the queue's lock) once ``item`` is this waiter's
        self.item = None
        self.served = False


def loop_waker(loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> Callable[[], None]:
    """A callable any thread may call to resolve ``future`` on ``loop`` (a no-op once it is done or cancelled).

    Call it from a coroutine on ``loop`` itself (the thread that made it) and ``future`` is resolved at once:
    ``call_soon_threadsafe`` would also write to the loop's wake-up pipe and read it back, one more pass of
    the loop for each answer handed over."""
    owner = threading.get_ident()

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    return lambda: resolve() if threading.get_ident() == owner else loop.call_soon_threadsafe(resolve)


class FairQueue(Generic[T]):
    """Free items handed out in the order they were asked for, to threads (``get``) and coroutines (``get_async``).

    threading.Semaphore (and queue.Queue) let a newcomer take an item freed for a woken waiter, so
    under a burst some requests wait many turns (seconds at the tail of a 50-customer load) while
    others pass at once. A freed item goes straight to the first waiter, and only that one wakes."""

    def __init__(self, items=()) -> None:
        self._free: deque[T] = deque(items)
        self._waiting: deque[_Waiter] = deque()
        self._lock = threading.Lock()

    def get(self, timeout: float | None = None) -> T | None:
        """The next free item, once every earlier caller has had one; None after ``timeout`` seconds."""
        event = threading.Event()
        waiter = self._take_or_wait(event.set)
        if not isinstance(waiter, _Waiter):
            return waiter
        event.wait(timeout)
        return self._settle(waiter)

    async def get_async(self, timeout: float | None = None) -> T | None:
        """``get`` for a coroutine: it waits without holding its event loop's thread."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        waiter = self._take_or_wait(loop_waker(loop, future))
        if not isinstance(waiter, _Waiter):
            return waiter
        try:
            async with asyncio.timeout(timeout):  # no task or future of its own, unlike wait_for
                await future
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            if (item := self._settle(waiter)) is not None:  # served just as it was cancelled: pass it on
                self.put(item)
            raise
        return self._settle(waiter)

    def _take_or_wait(self, wake: Callable[[], None]) -> T | _Waiter:
        with self._lock:
            if self._free and not self._waiting:
                return self._free.popleft()
            waiter = _Waiter(wake)
            self._waiting.append(waiter)
            return waiter

    def _settle(self, waiter: _Waiter) -> T | None:
        """The waiter's item, or None (and it leaves the line) if none came."""
        with self._lock:
            if not waiter.served:
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
        waiter.wake()


class FairSlots(FairQueue[int]):
    """A semaphore that serves waiters in arrival order: ``with slots:`` holds one of ``slots``."""

    def __init__(self, slots: int) -> None:
        super().__init__([0] * slots)

    def __enter__(self) -> None:
        self.get()

    def __exit__(self, *exc) -> None:
        self.put(0)
