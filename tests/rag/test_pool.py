"""Answer worker processes (rag/pool.py): same answers as the serving process, replaced when they die,
told about a new index, stopped with the engine. Real processes; every wait is on an event, with a
generous bound that only stops a hang."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time

import psutil
import pytest

from rag.answer import AnswerEngine
from rag.index import build_index
from settings import ROOT
from tests.conftest import run_in_new_loop, write_mini_kb

GUARD_S = 300


def _wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + GUARD_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _comparable(answer) -> dict:
    data = answer.to_dict()
    data.pop("latency_ms")
    return data


def _questions(limit_per_set: int = 25) -> list[tuple[str, str | None]]:
    """Questions of evaluation sets; every other one as a follow-up of the question before it."""
    out = []
    for name in ("chat_holdout.jsonl", "chat_eval.jsonl", "chat_blind22.jsonl"):
        lines = (ROOT / "datasets" / "eval" / name).read_text(encoding="utf-8").splitlines()[:limit_per_set]
        questions = [json.loads(line)["question"] for line in lines]
        out += [(q, questions[i - 1] if i % 2 else None) for i, q in enumerate(questions)]
    return out


@pytest.fixture
def pooled(shipped_config):
    engine = AnswerEngine(shipped_config.model_copy(update={"answer_processes": 2}))
    assert engine.start_processes() == 2
    yield engine
    engine.close()


def test_workers_give_the_answers_the_serving_process_gives(pooled, engine):
    workers = {w.pid for w in pooled.pool._workers}
    assert len(workers) == 2 and os.getpid() not in workers
    for question, previous in _questions():
        here = engine.answer(question, previous_question=previous)
        there = pooled.answer(question, previous_question=previous)
        assert _comparable(there) == _comparable(here), question
    assert pooled._retriever is None  # the serving process never loaded its own index for them
    assert pooled.index_build() == engine.index_build() is not None  # what /api/v1/model-status reports


def test_a_worker_that_dies_is_replaced_and_no_question_is_lost(pooled, engine):
    victim = next(iter(pooled.pool._workers)).pid
    os.kill(victim, signal.SIGKILL)
    question = "Comment payer ma facture ?"
    for _ in range(4):  # both slots of both workers: one of them meets the dead worker
        assert _comparable(pooled.answer(question)) == _comparable(engine.answer(question))
    _wait_until(lambda: pooled.pool.alive == 2 and victim not in {w.pid for w in pooled.pool._workers},
                "the dead worker was not replaced")  # fmt: skip
    assert _comparable(pooled.answer(question)) == _comparable(engine.answer(question))


def test_a_new_index_reaches_every_worker(tmp_path, embedder):
    from settings import RagConfig
    from tests.conftest import EMBEDDING_MODEL

    kb = write_mini_kb(tmp_path / "kb")
    config = RagConfig(kb_dir=kb, index_dir=tmp_path / "index", embedding_model=EMBEDDING_MODEL, answer_processes=2)
    build_index(config, embedder)
    engine = AnswerEngine(config)
    try:
        assert engine.start_processes() == 2
        before = {engine.answer("Où trouver ma facture ?").top_entry for _ in range(4)}
        assert before == {"m-1"}
        first_build = engine.index_build()
        faq = kb / "faq" / "mini.json"
        entries = [e for e in json.loads(faq.read_text(encoding="utf-8")) if e["id"] != "m-1"]
        faq.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
        build_index(config, embedder)
        engine.reload()
        engine.warm_up()
        after = {engine.answer("Où trouver ma facture ?").top_entry for _ in range(4)}  # each slot of each worker
        assert "m-1" not in after
        assert engine.index_build() not in (None, first_build)
    finally:
        engine.close()


def test_closing_the_engine_stops_its_workers(shipped_config):
    engine = AnswerEngine(shipped_config.model_copy(update={"answer_processes": 2}))
    assert engine.start_processes() == 2
    pids = [w.pid for w in engine.pool._workers]
    engine.close()
    _wait_until(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                                for p in pids), "the workers outlived the engine")  # fmt: skip
    assert engine.answer("Comment payer ma facture ?").sources  # answered here now


def test_no_workers_configured_means_answers_in_process(shipped_config):
    engine = AnswerEngine(shipped_config.model_copy(update={"answer_processes": 0}))
    assert engine.start_processes() == 0 and engine.pool is None
    assert shipped_config.model_copy(update={"answer_processes": 3}).worker_processes() == 3


def test_concurrent_questions_each_get_their_own_answer(pooled, engine):
    """More callers than worker slots: every answer read from a pipe goes to the caller who sent its question."""
    from concurrent.futures import ThreadPoolExecutor

    questions = [q for q, _ in _questions(8)]
    expected = {q: _comparable(engine.answer(q)) for q in questions}
    with ThreadPoolExecutor(max_workers=12) as threads:
        got = list(threads.map(lambda q: (q, _comparable(pooled.answer(q))), questions * 2))
    assert all(answer == expected[q] for q, answer in got)


def test_coroutines_on_the_event_loop_and_threads_share_the_workers_and_get_the_same_answers(pooled, engine):
    from concurrent.futures import ThreadPoolExecutor

    questions = _questions(10)
    expected = {q: _comparable(engine.answer(q, previous_question=p)) for q, p in questions}

    async def main() -> list[tuple[str, dict]]:
        async def one(question: str, previous: str | None) -> tuple[str, dict]:
            return question, _comparable(await pooled.answer_async(question, previous_question=previous))

        with ThreadPoolExecutor(max_workers=4) as threads:  # threaded callers at the same time, same workers
            threaded = [threads.submit(lambda q=q, p=p: (q, _comparable(pooled.answer(q, previous_question=p))))
                        for q, p in questions]  # fmt: skip
            got = await asyncio.gather(*(one(q, p) for q, p in questions * 2))
            return got + [future.result(GUARD_S) for future in threaded]

    got = run_in_new_loop(main)
    assert len(got) == 3 * len(questions) and all(answer == expected[q] for q, answer in got)


def test_a_coroutine_cancelled_while_its_answer_is_on_the_way_costs_that_worker_not_the_answers(pooled, engine):
    """Its answer would be read by the next sender: the worker is replaced, the others' answers stay right."""
    question = "Comment payer ma facture ?"
    before = {w.pid for w in pooled.pool._workers}

    async def main() -> list:
        doomed = asyncio.create_task(pooled.pool.answer_async("Je n'ai plus de réseau", None, None))
        others = [asyncio.create_task(pooled.pool.answer_async(question, None, None)) for _ in range(6)]
        await asyncio.sleep(0)  # every request is sent before the first answer can be read
        doomed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await doomed
        return await asyncio.gather(*others)

    answers = run_in_new_loop(main)
    expected = _comparable(engine.answer(question))
    assert all(answer is None or _comparable(answer) == expected for answer in answers)  # None: answered here
    _wait_until(lambda: pooled.pool.alive == 2 and {w.pid for w in pooled.pool._workers} != before,
                "the cancelled call's worker was not replaced")
    assert _comparable(pooled.answer(question)) == expected


def test_a_sender_sleeps_until_the_answer_before_its_own_is_read_and_only_it_is_woken():
    import threading

    from rag.pool import _Worker

    worker = _Worker(conn=None, pid=0)
    woken: list[int] = []

    def sender(number: int) -> None:
        assert worker.wait_turn(number, GUARD_S)
        woken.append(number)

    threads = {n: threading.Thread(target=sender, args=(n,)) for n in (1, 2)}
    for thread in threads.values():
        thread.start()
    _wait_until(lambda: set(worker.waiting) == {1, 2}, "the senders did not wait for their turn")
    worker.done_reading()  # answer 0 read: the sender of 1 only
    threads[1].join(GUARD_S)
    assert woken == [1] and threads[2].is_alive() and set(worker.waiting) == {2}
    worker.done_reading()
    threads[2].join(GUARD_S)
    assert woken == [1, 2] and worker.waiting == {}
    assert worker.wait_turn(3, 0.01) is False and worker.waiting == {}  # a turn that never comes times out


def test_a_coroutine_waits_its_turn_on_the_loop_and_leaves_the_line_when_cancelled():
    import asyncio

    from rag.pool import _Worker

    worker = _Worker(conn=None, pid=0)

    async def main() -> None:
        await asyncio.wait_for(worker.wait_turn_async(0), GUARD_S)  # first in line: no wait
        second = asyncio.create_task(worker.wait_turn_async(1))
        third = asyncio.create_task(worker.wait_turn_async(2))
        while set(worker.waiting) != {1, 2}:
            await asyncio.sleep(0.001)
        worker.done_reading()  # answer 0 read, from any thread: only the sender of 1 wakes
        await asyncio.wait_for(second, GUARD_S)
        assert not third.done() and set(worker.waiting) == {2}
        third.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await third
        assert worker.waiting == {}

    run_in_new_loop(main)


def test_the_first_sender_in_line_does_not_wait():
    from rag.pool import _Worker

    worker = _Worker(conn=None, pid=0)
    assert worker.wait_turn(0, 0) is True and worker.waiting == {}


def test_a_worker_keeps_its_engine_out_of_the_cyclic_gc_until_a_reload_replaces_it():
    import gc

    from rag.pool import _handle

    class Engine:  # what _handle calls of an engine, no model needed
        reloads = 0

        def reload(self):
            self.reloads += 1

        def answer(self, question, *args, mode):
            return f"{mode}: {question}"

    engine = Engine()
    gc.freeze()  # as serve_workers does before forking the workers
    try:
        assert _handle(engine, "answer", 0, ("Q ?",), 0) == ("ok", "extractive: Q ?")
        assert gc.get_freeze_count() > 0 and engine.reloads == 0  # same generation: still frozen
        assert _handle(engine, "answer", 1, ("Q ?",), 0) == ("ok", "extractive: Q ?")
        assert engine.reloads == 1 and gc.get_freeze_count() == 0  # the old engine may be collected again
    finally:
        gc.unfreeze()
