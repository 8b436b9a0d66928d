"""Extractive answers in worker processes, so that serving uses every core (``RagConfig.answer_processes``).

One process runs Python one thread at a time: the server's HTTP, database and answer work shared one
core's worth of the GIL, and 50 concurrent API customers got 0.64-0.87 x what one core answering
alone gives. The answer (analysis, embedding, retrieval, rules: about 8 ms of CPU) now runs in worker
processes while the serving process keeps HTTP, the database, the Gradio sessions and the limits.

- One worker is spawned (a fresh interpreter: nothing of the server's threads or sockets), loads the
  engine from the index on disk and answers once; on Linux it then forks the other workers, which
  share its model weights and index pages copy-on-write instead of loading their own (about 230 MB
  for the first, a fraction of it for each other).
- A request goes to the first free worker slot, in arrival order (``FairQueue``); each worker answers
  one question at a time on one onnxruntime thread, with up to ``PIPELINE`` requests queued in its pipe
  so that it never waits while the serving process hands over the next.
- ``reload()`` (a KB publication, here or on another replica) bumps a generation: each worker reloads
  the index before its next answer; ``warm_up()`` makes every worker do it at once.
- A worker that dies or hangs is replaced in the background; meanwhile the question is answered in the
  serving process (``answer`` returns None), so a customer never gets an error for it.
- Workers exit when the serving process closes its end of their pipes (``close()``, or its death).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from rag.fair import FairQueue, loop_waker

log = logging.getLogger(__name__)
START_TIMEOUT_S = 300.0  # the first worker may have to load the model from a cold disk on a busy machine


PIPELINE = 3  # requests in flight per worker (3 did better than 2 or 1 under the 50 x 10 load)


@dataclass(eq=False)
class _Worker:
    """A worker's pipe; its answers come back in the order the requests were sent, each read by its sender.

    A sender is a thread (``_call``) or a coroutine on the server's event loop (``_call_async``); both
    take their turn the same way, so the two kinds can share a worker."""

    conn: Connection
    pid: int
    sending: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    read: int = 0
    turns: threading.Lock = field(default_factory=threading.Lock)
    waiting: dict[int, Callable[[], None]] = field(default_factory=dict)  # request number -> wakes its sender

    def wait_turn(self, number: int, timeout: float) -> bool:
        """Until the answers before request ``number`` are read (False after ``timeout`` seconds).

        Each sender sleeps on its own event and the reader before it wakes only that one: a shared
        Condition's notify_all woke every sender in line for each answer read, most of them to sleep again."""
        turn = threading.Event()
        if self._queue_for_turn(number, turn.set) or turn.wait(timeout):
            return True
        return self._leave_line(number)

    async def wait_turn_async(self, number: int) -> None:
        """``wait_turn`` for a coroutine (the caller bounds the wait); cancelled, it leaves the line."""
        loop = asyncio.get_running_loop()
        turn = loop.create_future()
        if self._queue_for_turn(number, loop_waker(loop, turn)):
            return
        try:
            await turn
        except asyncio.CancelledError:
            self._leave_line(number)
            raise

    def _queue_for_turn(self, number: int, wake: Callable[[], None]) -> bool:
        """True if it is request ``number``'s turn now; else ``wake`` is called when it comes."""
        with self.turns:
            if self.read == number:
                return True
            self.waiting[number] = wake
            return False

    def _leave_line(self, number: int) -> bool:
        """A sender stops waiting; True if its turn came meanwhile."""
        with self.turns:
            self.waiting.pop(number, None)
            return self.read == number

    def done_reading(self) -> None:
        """The answer of request ``read`` was taken (or failed): wake the sender of the next one."""
        with self.turns:
            self.read += 1
            wake = self.waiting.pop(self.read, None)
        if wake is not None:
            wake()

    def wake_all(self) -> None:
        """The pipe is closed: every sender in line wakes (and finds it closed) instead of waiting out its timeout."""
        with self.turns:
            wakes, self.waiting = list(self.waiting.values()), {}
        for wake in wakes:
            wake()


class WorkerFailed(Exception):
    """A worker answered with an error, died or did not answer in time."""


class AnswerPool:
    """``processes`` answer workers over ``config``'s index; ``start()`` returns once they answer."""

    def __init__(self, config: Any, processes: int, answer_timeout_s: float = 60.0,
                 log_level: str = "WARNING", log_format: str = "text") -> None:  # fmt: skip
        self.config = config.model_copy(update={"answer_processes": 0, "embed_threads": 1})
        self.processes = processes
        self.answer_timeout_s = answer_timeout_s
        self._log = (log_level, log_format)
        self._idle: FairQueue[_Worker] = FairQueue()
        self._workers: set[_Worker] = set()
        self._lock = threading.Lock()
        self._generation = 0
        self._closed = False
        self._children: list[multiprocessing.process.BaseProcess] = []
        self.index_build: str | None = None  # the index build the workers said they serve (start, warm-up)

    @property
    def alive(self) -> int:
        """Workers serving now."""
        with self._lock:
            return len(self._workers)

    def start(self) -> int:
        """Spawn the workers and wait until they are ready; return how many are (0 if they could not start)."""
        try:
            self._spawn(self.processes)
        except Exception as exc:
            log.warning("answer workers could not start (%s): answering in the serving process", exc)
        return self.alive

    def answer(self, question: str, previous_top_entries: list[str] | None, previous_question: str | None):
        """The extractive ``Answer`` from the first idle worker, or None (no live worker, or it failed)."""
        if self.alive == 0:
            return None
        worker = self._idle.get(timeout=self.answer_timeout_s)
        if worker is None:
            return None
        try:
            return self._call(worker, "answer", (question, previous_top_entries, previous_question))
        except WorkerFailed as exc:
            log.warning("answer worker %s failed (%s): answered in the serving process", worker.pid, exc)
            return None

    async def answer_async(self, question: str, previous_top_entries: list[str] | None, previous_question: str | None):
        """``answer`` for a coroutine on the server's event loop: it waits for a slot and the answer without a thread."""
        if self.alive == 0:
            return None
        worker = await self._idle.get_async(timeout=self.answer_timeout_s)
        if worker is None:
            return None
        try:
            return await self._call_async(worker, "answer", (question, previous_top_entries, previous_question))
        except WorkerFailed as exc:
            log.warning("answer worker %s failed (%s): answered in the serving process", worker.pid, exc)
            return None

    def reload(self) -> None:
        """Every worker loads the index again before its next answer."""
        with self._lock:
            self._generation += 1

    def warm_up(self) -> None:
        """Each live worker loads the current index now (holds them all for that moment)."""
        taken = []
        for _ in range(self.alive * PIPELINE):
            worker = self._idle.get(timeout=self.answer_timeout_s)
            if worker is None:
                break
            taken.append(worker)
        unique = list(dict.fromkeys(taken))
        for worker in unique:
            try:
                self.index_build = self._call(worker, "warm", ())  # gives one slot back
            except WorkerFailed as exc:
                log.warning("answer worker %s failed to warm up (%s)", worker.pid, exc)
        for worker in [w for i, w in enumerate(taken) if w in taken[:i]]:  # the other slots of each
            with self._lock:
                alive = worker in self._workers
            if alive:
                self._idle.put(worker)

    def close(self) -> None:
        """Stop the workers: they exit when their pipe closes."""
        with self._lock:
            self._closed = True
            workers, self._workers = list(self._workers), set()
        for worker in workers:
            worker.conn.close()
        for child in self._children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()

    def _call(self, worker: _Worker, op: str, args: tuple):
        """Send one request on a slot of a worker held by the caller, read its answer in turn, give the slot back.

        A worker that fails is replaced; the slot of a worker that failed is not given back."""
        try:
            number = self._send(worker, op, args)
            if not worker.wait_turn(number, self.answer_timeout_s):  # the answers before this one are read first
                raise WorkerFailed(f"no answer within {self.answer_timeout_s:.0f} s")
            try:
                if not worker.conn.poll(self.answer_timeout_s):
                    raise WorkerFailed(f"no answer within {self.answer_timeout_s:.0f} s")
                status, result = worker.conn.recv()
            finally:
                worker.done_reading()
        except (EOFError, OSError) as exc:
            self._lost(worker)
            raise WorkerFailed(type(exc).__name__) from None
        except WorkerFailed:
            self._lost(worker)
            raise
        return self._give_back(worker, status, result)

    async def _call_async(self, worker: _Worker, op: str, args: tuple):
        """``_call`` on the event loop: the answer is read when the loop sees the pipe readable, in turn.

        Cancelled (or out of time) after sending, the request's answer would be read by the next sender:
        the worker is replaced, as one that hangs is."""
        try:
            number = self._send(worker, op, args)
            try:
                async with asyncio.timeout(self.answer_timeout_s):  # wait_for would wrap the read in a task per answer
                    status, result = await self._read_async(worker, number)
            except TimeoutError:
                raise WorkerFailed(f"no answer within {self.answer_timeout_s:.0f} s") from None
        except (EOFError, OSError) as exc:
            self._lost(worker)
            raise WorkerFailed(type(exc).__name__) from None
        except (WorkerFailed, asyncio.CancelledError):
            self._lost(worker)
            raise
        return self._give_back(worker, status, result)

    @staticmethod
    async def _read_async(worker: _Worker, number: int) -> tuple[str, Any]:
        await worker.wait_turn_async(number)
        try:
            if not worker.conn.poll(0):
                loop = asyncio.get_running_loop()
                readable = loop.create_future()
                fd = worker.conn.fileno()
                loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
                try:
                    await readable
                finally:
                    with contextlib.suppress(OSError, ValueError):  # the pipe may be closed meanwhile (_lost)
                        loop.remove_reader(fd)
            return worker.conn.recv()
        finally:
            worker.done_reading()

    def _send(self, worker: _Worker, op: str, args: tuple) -> int:
        """Queue a request in the worker's pipe; its number tells when its answer is the next one to read."""
        with worker.sending:
            number = worker.sent
            worker.sent += 1
            worker.conn.send((op, self._generation, args))
        return number

    def _give_back(self, worker: _Worker, status: str, result: Any) -> Any:
        self._idle.put(worker)
        if status != "ok":
            raise WorkerFailed(result)
        return result

    def _lost(self, worker: _Worker) -> None:
        """Forget a dead (or hung: killed) worker and start a replacement in the background."""
        with self._lock:
            if worker not in self._workers:  # its other slot's caller saw the failure first
                return
            self._workers.discard(worker)
            replace = not self._closed
        with contextlib.suppress(OSError):  # a hung worker is killed; a dead one is gone already
            os.kill(worker.pid, signal.SIGKILL)
        worker.conn.close()
        worker.wake_all()
        if replace:
            threading.Thread(target=self._replace, name="answer-worker-restart", daemon=True).start()

    def _replace(self) -> None:
        try:
            self._spawn(1)
        except Exception as exc:
            log.warning("answer worker could not be restarted (%s)", exc)

    def _spawn(self, count: int) -> None:
        """Start ``count`` workers; add each once it said it is ready.

        One spawned process forks the others where the OS can (they share its loaded pages), else one each."""
        if count > 1 and not hasattr(os, "fork"):
            for _ in range(count):
                self._spawn(1)
            return
        context = multiprocessing.get_context("spawn")
        pairs = [context.Pipe() for _ in range(count)]
        child = context.Process(target=serve_workers, args=(self.config, [theirs for _, theirs in pairs], self._log),
                                name="mobilia-answers", daemon=True)  # fmt: skip
        child.start()
        self._children = [c for c in self._children if c.is_alive()] + [child]
        for _, theirs in pairs:
            theirs.close()  # the child holds them now: EOF on ours means the worker is gone
        deadline = time.monotonic() + START_TIMEOUT_S
        for ours, _ in pairs:
            if not ours.poll(max(0.0, deadline - time.monotonic())):
                ours.close()
                raise WorkerFailed("not ready in time")
            try:
                status, pid = ours.recv()
            except EOFError:
                raise WorkerFailed(f"exited with code {child.exitcode}") from None
            if status != "ready":
                raise WorkerFailed(pid)
            pid, self.index_build = pid
            worker = _Worker(ours, pid)
            with self._lock:
                if self._closed:
                    ours.close()
                    continue
                self._workers.add(worker)
            for _ in range(PIPELINE):
                self._idle.put(worker)
        log.info("%d answer worker(s) ready", count)


def serve_workers(config: Any, conns: list[Connection], logging_options: tuple[str, str]) -> None:
    """Child process: load the engine once, fork a worker per extra pipe, answer on the first pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which closes the pipes
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from logsetup import configure_logging

    configure_logging(*logging_options)
    from rag.answer import AnswerEngine

    try:
        engine = AnswerEngine(config)
        engine.warm_up()
        engine.answer("Comment payer ma facture ?")  # the first answer's one-time costs, paid once for all
        if len(conns) > 1 and threading.active_count() != 1:
            raise RuntimeError("cannot fork a process that runs threads")
    except Exception as exc:
        for conn in conns:
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise
    # The engine (index, model, rules) lives as long as the workers: frozen out of the cyclic GC, the forked
    # workers' full collections neither walk it (tens of ms each) nor copy its pages (copy-on-write) until a
    # reload replaces it (see _handle).
    gc.freeze()
    for conn in conns[1:]:
        if os.fork() == 0:
            for other in conns:
                if other is not conn:
                    other.close()
            _answer_loop(engine, conn)
            os._exit(0)
        conn.close()
    _answer_loop(engine, conns[0])


def _answer_loop(engine, conn: Connection) -> None:
    conn.send(("ready", (os.getpid(), engine.index_build())))
    generation = 0
    while True:
        try:
            op, wanted, args = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(_handle(engine, op, wanted, args, generation))
        generation = wanted


def _handle(engine, op: str, wanted: int, args: tuple, generation: int) -> tuple[str, Any]:
    try:
        if wanted != generation:
            engine.reload()
            gc.unfreeze()  # what the reload replaced may be collected again
        if op == "warm":
            engine.warm_up()
            return "ok", engine.index_build()
        if op == "answer":
            return "ok", engine.answer(*args, mode="extractive")
        return "error", f"unknown request {op!r}"
    except Exception as exc:
        logging.getLogger(__name__).exception("answer worker failed on a %s request", op)
        return "error", f"{type(exc).__name__}: {exc}"
