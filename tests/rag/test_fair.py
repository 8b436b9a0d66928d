"""FairSlots: waiters get a slot in arrival order, never more at once than slots."""

from __future__ import annotations

import threading
import time

from rag.fair import FairSlots


def test_waiters_are_served_in_arrival_order_and_never_beyond_the_slots():
    slots = FairSlots(2)
    order, inside, peak = [], [0], [0]
    lock = threading.Lock()
    release = threading.Event()
    queued = threading.Semaphore(0)

    def work(i: int) -> None:
        queued.release()
        with slots:
            with lock:
                order.append(i)
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            release.wait(timeout=60)
            with lock:
                inside[0] -= 1

    threads = []
    for i in range(8):  # started one after the other: each is queued before the next starts
        thread = threading.Thread(target=work, args=(i,))
        thread.start()
        assert queued.acquire(timeout=60)
        threads.append(thread)
        if i >= 2:  # wait until it is really queued (the guard only stops a hang)
            deadline = time.monotonic() + 60
            while len(slots._waiting) < i - 1:
                assert thread.is_alive() and time.monotonic() < deadline
                time.sleep(0.001)
    release.set()
    for thread in threads:
        thread.join(timeout=60)
    assert order == list(range(8)) and peak[0] == 2
