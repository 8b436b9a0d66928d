"""FairSlots / FairQueue: waiters get a slot (an item) in arrival order, never more at once than there are."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque

from rag.fair import FairQueue, FairSlots
from tests.conftest import run_in_new_loop

GUARD_S = 60  # only stops a hang


def _wait_until(condition, thread: threading.Thread | None = None) -> None:
    deadline = time.monotonic() + GUARD_S
    while not condition():
        assert (thread is None or thread.is_alive()) and time.monotonic() < deadline
        time.sleep(0.001)


def test_waiters_are_served_in_arrival_order_and_never_beyond_the_slots():
    slots = FairSlots(2)
    order, inside, peak = [], [0], [0]
    lock = threading.Lock()
    releases = [threading.Event() for _ in range(8)]

    def work(i: int) -> None:
        with slots:
            with lock:
                order.append(i)
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            releases[i].wait(timeout=GUARD_S)
            with lock:
                inside[0] -= 1

    threads = []
    for i in range(8):  # started one after the other: each is queued (or inside) before the next starts
        thread = threading.Thread(target=work, args=(i,))
        thread.start()
        threads.append(thread)
        _wait_until(lambda i=i: len(order) == i + 1 if i < 2 else len(slots._waiting) == i - 1, thread)
    for i in range(6):  # each slot freed goes to the longest waiter, and only to it
        releases[i].set()
        _wait_until(lambda i=i: len(order) == i + 3)
    for event in releases:
        event.set()
    for thread in threads:
        thread.join(timeout=GUARD_S)
    assert order == list(range(8)) and peak[0] == 2


def test_a_waiter_that_times_out_leaves_its_turn_to_the_next():
    queue: FairQueue[str] = FairQueue(["worker"])
    assert queue.get() == "worker"
    assert queue.get(timeout=0.01) is None  # nothing came: it gave up and left the line
    got = []
    waiter = threading.Thread(target=lambda: got.append(queue.get(timeout=GUARD_S)))
    waiter.start()
    _wait_until(lambda: len(queue._waiting) == 1, waiter)
    queue.put("worker")
    waiter.join(timeout=GUARD_S)
    assert got == ["worker"] and not queue._waiting and not queue._free


def test_coroutines_and_threads_wait_in_one_line_and_a_coroutine_holds_no_thread():
    import asyncio

    queue: FairQueue[str] = FairQueue(["worker"])
    assert queue.get() == "worker"
    got: list[tuple[str, str | None]] = []

    async def main() -> None:
        first = asyncio.create_task(queue.get_async(timeout=GUARD_S))
        while len(queue._waiting) < 1:
            await asyncio.sleep(0.001)
        thread = threading.Thread(target=lambda: got.append(("thread", queue.get(timeout=GUARD_S))))
        thread.start()
        while len(queue._waiting) < 2:  # the loop keeps running while the coroutine waits
            await asyncio.sleep(0.001)
        queue.put("worker")  # the coroutine came first
        got.append(("coroutine", await first))
        queue.put("worker")
        await asyncio.to_thread(thread.join, GUARD_S)

    run_in_new_loop(main)
    assert got == [("coroutine", "worker"), ("thread", "worker")] and queue._waiting == deque()


def test_a_coroutine_that_times_out_or_is_cancelled_leaves_the_line_and_passes_on_an_item_it_was_given():
    import asyncio

    queue: FairQueue[str] = FairQueue(["worker"])
    assert queue.get() == "worker"

    async def main() -> None:
        assert await queue.get_async(timeout=0.01) is None and not queue._waiting  # nothing came
        waiting = asyncio.create_task(queue.get_async(timeout=GUARD_S))
        while not queue._waiting:
            await asyncio.sleep(0.001)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        assert not queue._waiting
        # Served and cancelled in the same instant: the item is the caller's (its result) or back in the queue,
        # never lost (which one depends on the Python version's wait_for).
        served = asyncio.create_task(queue.get_async(timeout=GUARD_S))
        while not queue._waiting:
            await asyncio.sleep(0.001)
        queue.put("worker")
        served.cancel()
        try:
            holders = [await served]
        except asyncio.CancelledError:
            holders = []
        holders += list(queue._free)
        assert holders == ["worker"] and not queue._waiting

    run_in_new_loop(main)
