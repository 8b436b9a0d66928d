"""API load test: concurrent simulated customers on loopback against POST /api/v1/chat/message.

    python -m bench.load [--customers 200] [--duration 60] [--database-url URL]
    python -m bench.load --replicas 1 2 --database-url URL --redis-url URL   # one vs two replicas, same run
    python -m bench.load --customers 50 --messages 10   # closed loop: served rate vs one core answering alone
    python -m bench.load --customers 50 --messages 10 --repeat 7   # seven runs and their medians

Starts the API (extractive answers) in a child process on 127.0.0.1 over a fresh database (a temp
SQLite file unless ``--database-url``, e.g. the one ``bash scripts/postgres.sh`` prints; its
tables are used as they are; messages are tagged per run), then runs ``--customers`` asyncio
customers for ``--duration`` seconds: each opens a conversation, then sends uniquely numbered
messages. 429 answers (the per-conversation limit, on purpose) are counted apart; any other
non-200 or transport error is an error. Afterwards every accepted message must be stored
exactly once and no refused one at all. Prints one JSON object.

``--replicas 1 2`` runs the same load once per replica count (N API processes sharing the database
and, with ``--redis-url``, Redis; customer i talks to replica i mod N, as a sticky balancer would)
and adds the throughput ratio of the largest count to one replica.

``--messages N`` makes every customer send N messages back to back (no think time unless given) and
measures, in a child pinned to one CPU before the servers start and again after they stop, how many
answers per second the engine alone gives on one core; ``served_vs_engine_1core`` is the served rate
over the mean of the two (>= 1.0: serving, HTTP and database included, uses both cores).
``--engine-pair`` also runs two engines at once, one pinned to each of two CPUs, before the servers
start: ``engine_2cores_vs_1core`` is their summed rate over one engine's alone (2.0 when two busy cores
answer as fast as two idle ones). Where the served messages' CPU goes, per accepted message: the API
processes (``api_process_cpu_ms_per_message``), their answer workers
(``answer_workers_cpu_ms_per_message``, to compare with the engine's own ``engine_cpu_ms_per_answer``),
a PostgreSQL server on this machine (``database_cpu_ms_per_message``), the load generator and the
whole machine.

``--repeat N`` runs each measurement N times and adds ``medians`` (median, min and max of the
headline figures per replica count): a 50 x 10 run lasts about 3 s, and this VM's speed drifts by a
quarter within minutes, so one run is not a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # never anything else: this floods the server
QUESTIONS = (
    "Comment payer ma facture ?",
    "Je n'ai plus de réseau",
    "Comment activer ma carte SIM ?",
    "Quel est le prix du forfait ?",
    "Comment utiliser mon mobile à l'étranger ?",
)


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m bench.load`."""
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--customers", type=int, default=200, help="concurrent simulated customers (max 1000)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (max 600)")
    parser.add_argument("--database-url", help="database of the server (default: a temp SQLite file)")
    parser.add_argument("--conversation-limit", default="20/minute", help="per-conversation rate limit")
    parser.add_argument("--think-time", type=float, default=None,
                        help="seconds a customer waits between messages (default 0.5; 0 with --messages)")
    parser.add_argument("--messages", type=int, default=0, help="messages per customer, sent back to back (0: timed)")
    parser.add_argument("--engine-rate", type=float, default=0, help=argparse.SUPPRESS)  # child: seconds to measure
    parser.add_argument("--replicas", type=int, nargs="+", default=[1], help="API processes, e.g. `1 2` (max 8)")
    parser.add_argument("--redis-url", help="Redis shared by the replicas (MOBILIA_REDIS_URL; default: none)")
    parser.add_argument("--answer-processes", type=int, default=None,
                        help="answer worker processes per replica (MOBILIA_RAG__ANSWER_PROCESSES; default: the settings', "
                        "-1 one per core; 0: answers in the API process)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each measurement (max 20): each is printed with their median, the figure to "
                        "quote on a VM whose speed drifts within minutes (a 50 x 10 run lasts about 3 s)")
    parser.add_argument("--engine-pair", action="store_true",
                        help="with --messages: also measure two engines at once, one pinned to each of two CPUs "
                        "(what this machine's cores give the answer work alone when both are busy)")  # fmt: skip
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def serve(args: argparse.Namespace) -> None:
    """Child process: the API alone (no Gradio) under uvicorn on loopback."""
    import gc
    import logging
    import secrets

    import uvicorn

    from api import create_api
    from services import build_services
    from settings import get_settings

    logging.basicConfig(level=logging.WARNING)
    settings = get_settings(
        database_url=args.database_url,
        redis_url=args.redis_url or None,
        host=HOST,
        port=args.port,
        secret_key=secrets.token_urlsafe(32),
        rag={"answer_mode": "extractive",
             **({"answer_processes": args.answer_processes} if args.answer_processes is not None else {})},
        # Every simulated customer comes from loopback: per-client limits are lifted, the per-conversation one stays.
        api={"rate_limit_ip": "1000000/minute", "rate_limit_conversations_client": "1000000/hour",
             "rate_limit_conversation": args.conversation_limit},
    )
    services = build_services(settings)
    services.prepare()  # as app.py: migrations, the KB index, the answer worker processes
    try:
        app = create_api(services)
        gc.freeze()  # as app.py: what start-up built stays out of the full collections
        uvicorn.run(
            app, host=HOST, port=args.port, log_level="warning", backlog=2048, timeout_keep_alive=120
        )
    finally:
        services.close()


def message_text(run: str, customer: int, n: int) -> str:
    """Message ``n`` of a customer: one of QUESTIONS behind a tag that makes it unique, so that its storage
    can be checked and, like a real customer's message, it is embedded afresh (a tag after the question
    made it a two-part message and let the query cache serve parts of it across customers)."""
    return f"[{run}-{customer}-{n}] {QUESTIONS[n % len(QUESTIONS)]}"


def _async_turns(database_url: str, redis_url: str | None) -> bool:
    """Whether the servers answer chat turns on their event loop: the servers' own rule (``api.app.turns_on_loop``)."""
    from api.app import turns_on_loop
    from guard.ratelimit import RateLimits
    from settings import get_settings
    from storage import Database

    settings = get_settings(database_url=database_url, redis_url=redis_url or None)
    limits_local = RateLimits.storage_uri_of(settings.api, redis_url or None).startswith("memory://")
    return turns_on_loop(settings.api, limits_local, Database(database_url).is_memory)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class _Http:
    """One customer's keep-alive HTTP/1.1 connection, written for the load generator's cost alone.

    The generator shares the 2-core machine with the server it measures, so every millisecond it spends
    is taken from the server: aiohttp's client used 0.5-1.0 ms of CPU per message here (httpx's about
    10 ms), this one about a fifth of that. It speaks just what the API answers: a status line, headers,
    a Content-Length or chunked body; a dropped connection is reopened by the next request."""

    def __init__(self, base_url: str, timeout: float = 120.0) -> None:
        host, _, port = base_url.removeprefix("http://").partition(":")
        self.host, self.port, self.timeout = host, int(port or 80), timeout
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post_json(self, path: str, body: dict, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """Status, lower-cased headers and body of one POST; transport errors raise (the connection is dropped)."""
        payload = json.dumps(body, ensure_ascii=False).encode()
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(payload)}\r\n{head}\r\n").encode() + payload  # fmt: skip
        try:
            async with asyncio.timeout(self.timeout):
                if self._streams is None:
                    self._streams = await asyncio.open_connection(self.host, self.port)
                reader, writer = self._streams
                writer.write(request)
                status, response_headers, data = await self._response(reader)
        except BaseException:
            self.close()
            raise
        if response_headers.get("connection", "").lower() == "close":
            self.close()
        return status, response_headers, data

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            return status, headers, await reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append((await reader.readexactly(size + 2))[:-2])
            await reader.readuntil(b"\r\n")  # no trailers from this server: the final empty line
            return status, headers, b"".join(chunks)
        return status, {**headers, "connection": "close"}, await reader.read()  # the body ends with the connection

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def _customer(index: int, base_url: str, deadline: float, think: float, stats: dict, messages: int = 0) -> None:
    """One customer on its own connection: open a conversation, then send numbered messages until the
    deadline (or `messages` sent)."""
    phone = f"06{index:08d}"
    key, conversation_id, n, attempts = None, None, 0, 0
    http = _Http(base_url)
    try:
        while time.monotonic() < deadline and (not messages or n < messages):
            text = message_text(stats["run"], index, n)
            body: dict = {"message": text}
            # A retry after a transport error (e.g. a keep-alive connection closed under it) sends the same
            # key: the server answers it from the first attempt if that one was stored, never twice.
            headers = {"Idempotency-Key": f"{stats['run']}-{index}-{n}"}
            if conversation_id is None:
                body["user_info"] = {"full_name": f"Client Test {chr(65 + index % 26)}", "phone": phone}
            else:
                body["conversation_id"] = conversation_id
                headers["X-Conversation-Key"] = key
            started = time.perf_counter()
            try:
                status, response_headers, raw = await http.post_json("/api/v1/chat/message", body, headers)
                data = json.loads(raw) if status == 200 else {"text": raw[:200].decode(errors="replace")}
            except Exception as exc:  # transport error: retried (same key) twice, then counted as an error
                attempts += 1
                stats.setdefault("retried", []).append(f"{type(exc).__name__}: {exc}"[:200])
                if attempts > 2:
                    stats["errors"].append(f"{type(exc).__name__}: {exc}"[:200])
                    attempts, n = 0, n + 1
                await asyncio.sleep(think)
                continue
            attempts = 0
            elapsed = (time.perf_counter() - started) * 1000
            if status == 200:
                conversation_id = data["conversation_id"]
                key = data["conversation_key"] or key
                stats["accepted"].append(text)
                stats["latency"].append(elapsed)
                n += 1
                await asyncio.sleep(think)
            elif status == 429:
                stats["limited"].append(text)
                n += 1
                retry = float(response_headers.get("retry-after", "1"))
                await asyncio.sleep(min(retry, max(0.0, deadline - time.monotonic())))
            else:
                stats["errors"].append(f"HTTP {status}: {data['text']}")
                await asyncio.sleep(think)
    finally:
        http.close()


async def _load(base_urls: list[str], customers: int, duration: float, think: float, run: str, messages: int = 0) -> dict:
    stats: dict = {"run": run, "accepted": [], "limited": [], "errors": [], "latency": []}
    deadline = time.monotonic() + duration
    await asyncio.gather(*(_customer(i, base_urls[i % len(base_urls)], deadline, think, stats, messages)
                           for i in range(customers)))  # fmt: skip
    return stats


@functools.cache
def _loop_runner() -> Callable:
    """What runs the customers: uvloop where installed (uvicorn's standard extra brings it), about a quarter less
    of the load generator's CPU than asyncio's own loop. Importing it costs ~40 ms of CPU once: ``_measure``
    calls this before its timed window, so the first run of a ``--repeat`` is not charged for it."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def _run_loop(coroutine):
    return _loop_runner()(coroutine)


def _check_storage(database_url: str, run: str, accepted: list[str], limited: list[str]) -> dict:
    """Every accepted message stored exactly once, no refused message stored."""
    from sqlalchemy import func, select

    from storage import Database, Message

    db = Database(database_url)
    try:
        with db.session() as s:
            rows = s.execute(
                select(Message.content, func.count())
                .where(Message.role == "user", Message.content.startswith(f"[{run}-"))
                .group_by(Message.content)
            ).all()
    finally:
        db.dispose()
    stored = {content: count for content, count in rows if content.startswith(f"[{run}-")}
    return {
        "accepted_missing": sum(1 for t in accepted if t not in stored),
        "duplicated": sum(1 for c in stored.values() if c > 1),
        "refused_but_stored": sum(1 for t in limited if t in stored),
        "unexpected_stored": len(set(stored) - set(accepted)),
    }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def main(argv: list[str] | None = None) -> int:
    """Run the load test and print JSON; exit 1 on errors or a storage mismatch."""
    args = make_parser().parse_args(argv)
    if args.serve:
        serve(args)
        return 0
    if args.engine_rate:
        print(json.dumps(engine_rate(args.engine_rate, args.messages)))
        return 0
    customers, duration = min(max(args.customers, 1), 1000), min(max(args.duration, 1.0), 600.0)
    counts = [min(max(n, 1), 8) for n in args.replicas]
    repeat = min(max(args.repeat, 1), 20)
    results = [_measure(args, n, customers, duration) for n in counts for _ in range(repeat)]
    if len(results) == 1:
        print(json.dumps(results[0], ensure_ascii=False))
    elif repeat > 1:
        print(json.dumps({"runs": results, "medians": medians(results)}, ensure_ascii=False))
    else:
        one = next((r for r in results if r["replicas"] == 1), results[0])
        best = max(results, key=lambda r: r["replicas"])
        ratio = round(best["accepted_per_s"] / one["accepted_per_s"], 2) if one["accepted_per_s"] else None
        print(json.dumps({"runs": results, f"throughput_ratio_{best['replicas']}_vs_1": ratio}, ensure_ascii=False))
    ok = all(r["errors"] == 0 and r["stored_exactly_once"] for r in results)
    return 0 if ok else 1


def medians(results: list[dict]) -> dict[str, dict]:
    """Per replica count: the median and range of each headline figure over repeated runs."""
    figures = ("served_vs_engine_1core", "accepted_per_s", "engine_1core_per_s", "engine_2cores_vs_1core",
               "engine_cpu_ms_per_answer",
               "answer_workers_cpu_ms_per_message", "api_process_cpu_ms_per_message", "database_cpu_ms_per_message",
               "machine_cpu_ms_per_message")  # fmt: skip
    summary: dict[str, dict] = {}
    for replicas in sorted({r["replicas"] for r in results}):
        runs = [r for r in results if r["replicas"] == replicas]
        row: dict = {"runs": len(runs)}
        for name, values in [(f, [r[f] for r in runs if r.get(f) is not None]) for f in figures]:
            if values:
                row[name] = {"median": round(statistics.median(values), 2), "min": min(values), "max": max(values)}
        p95 = [r["latency_ms"]["p95"] for r in runs if r["latency_ms"]["p95"] is not None]
        if p95:
            row["p95_ms"] = {"median": round(statistics.median(p95), 1), "min": min(p95), "max": max(p95)}
        row["all_stored_exactly_once"] = all(r["stored_exactly_once"] for r in runs)
        summary[str(replicas)] = row
    return summary


def _measure(args: argparse.Namespace, replicas: int, customers: int, duration: float) -> dict:
    """One load run against ``replicas`` API processes; the figures and the storage check as a dict."""
    run = uuid.uuid4().hex[:8]  # tags this run's messages (a reused database may hold older ones)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite:///{Path(tmp) / 'load.db'}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
        # The engine's one-core rate, measured while nothing else runs: before the servers start and again after
        # they stop, so a drift of the machine's speed during the run (this VM's moved by up to 25 % within a minute) cancels out.
        engine = _engine_rate_child(env, args.messages) if args.messages else None
        pair = _engine_pair(env, args.messages) if args.messages and args.engine_pair else None
        load_before = os.getloadavg()
        servers, urls = [], []
        try:
            for n in range(replicas):
                port = _free_port()
                log_path = Path(tmp) / f"server-{n}.log"
                command = [sys.executable, "-m", "bench.load", "--serve", "--port", str(port), "--database-url",
                           database_url, "--conversation-limit", args.conversation_limit,
                           *(["--answer-processes", str(args.answer_processes)] if args.answer_processes is not None else []),
                           *(["--redis-url", args.redis_url] if args.redis_url else [])]  # fmt: skip
                with log_path.open("wb") as log_file:
                    servers.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file,
                                                    stderr=subprocess.STDOUT))  # fmt: skip
                urls.append(f"http://{HOST}:{port}")
                _wait_ready(urls[-1], servers[-1], log_path)  # one at a time: the first migrates
            _loop_runner()  # its one-time import stays out of the timed window
            (cpu_before, api_before), client_before = _cpu_seconds(servers), time.process_time()
            machine_before, database_before = _machine_cpu(), _database_cpu(database_url)
            t0 = time.monotonic()
            think = args.think_time if args.think_time is not None else (0.0 if args.messages else 0.5)
            stats = _run_loop(_load(urls, customers, duration, think, run, args.messages))
            wall = time.monotonic() - t0
            cpu_after, api_after = _cpu_seconds(servers)
            machine_busy, machine_total, machine_steal = (a - b for a, b in zip(_machine_cpu(), machine_before, strict=True))
            server_cpu, api_cpu = cpu_after - cpu_before, api_after - api_before
            client_cpu = time.process_time() - client_before  # the load generator shares the machine
            database_after = _database_cpu(database_url)
            database_cpu = None if None in (database_before, database_after) else database_after - database_before
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                try:
                    server.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
        if engine is not None:
            after = _engine_rate_child(env, args.messages)
            engine = (round((engine[0] + after[0]) / 2, 1), round((engine[1] + after[1]) / 2, 2), [engine[0], after[0]])
        try:
            storage = _check_storage(database_url, run, stats["accepted"], stats["limited"])
        except Exception as exc:  # still print the load figures
            storage = {"check_failed": f"{type(exc).__name__}: {exc}"[:300]}
    return {
        "replicas": replicas,
        "database": database_url.split(":", 1)[0],
        "redis": bool(args.redis_url),
        # Chat turns on the servers' event loop (PostgreSQL, MOBILIA_API__ASYNC_TURNS, limits in memory).
        "async_turns": _async_turns(database_url, args.redis_url),
        "customers": customers,
        "duration_s": round(wall, 1),
        "requests": len(stats["accepted"]) + len(stats["limited"]) + len(stats["errors"]),
        "accepted": len(stats["accepted"]),
        "rate_limited_429": len(stats["limited"]),
        "errors": len(stats["errors"]),
        "error_samples": sorted(set(stats["errors"]))[:5],
        "transport_retries": len(stats.get("retried", [])),
        "accepted_per_s": round(len(stats["accepted"]) / wall, 1),
        **({"engine_1core_per_s": engine[0], "engine_cpu_ms_per_answer": engine[1], "engine_1core_before_after": engine[2],
            "served_vs_engine_1core": round(len(stats["accepted"]) / wall / engine[0], 2)} if engine else {}),
        # Two engines at once, one per CPU: their summed rate and its ratio to one engine alone (2.0: the two busy
        # cores answer as fast as one idle one each; less when they share the host's core, caches or power).
        **({"engine_2cores_per_s": pair, "engine_2cores_vs_1core": round(pair / engine[0], 2)} if pair and engine else {}),
        # CPU the server processes used per accepted message, HTTP and database included (whatever else runs).
        "server_cpu_ms_per_message": round(1000 * server_cpu / max(1, len(stats["accepted"])), 2),
        # ... of which the API processes themselves (the rest: their answer worker processes).
        "api_process_cpu_ms_per_message": round(1000 * api_cpu / max(1, len(stats["accepted"])), 2),
        # ... of which their answer worker processes (compare with engine_cpu_ms_per_answer: the engine alone).
        "answer_workers_cpu_ms_per_message": round(1000 * (server_cpu - api_cpu) / max(1, len(stats["accepted"])), 2),
        "client_cpu_ms_per_message": round(1000 * client_cpu / max(1, len(stats["accepted"])), 2),
        # A PostgreSQL server on this machine: its processes' CPU (None for SQLite, a remote server or no psutil).
        "database_cpu_ms_per_message": (round(1000 * database_cpu / max(1, len(stats["accepted"])), 2)
                                        if database_cpu is not None else None),
        # The whole machine's during the load: every process (a local PostgreSQL's too), and how busy its CPUs were.
        "machine_cpu_ms_per_message": round(1000 * machine_busy / max(1, len(stats["accepted"])), 2),
        "machine_cpu_busy_pct": round(100 * machine_busy / machine_total, 1) if machine_total else None,
        "machine_cpu_steal_pct": round(100 * machine_steal / machine_total, 1) if machine_total else None,
        "latency_ms": {
            "p50": _percentile(stats["latency"], 0.50),
            "p95": _percentile(stats["latency"], 0.95),
            "max": _percentile(stats["latency"], 1.0),
        },
        "storage": storage,
        "lost_messages": storage.get("accepted_missing"),
        "stored_exactly_once": not any(v for k, v in storage.items()),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
    }


def engine_rate(seconds: float, messages: int) -> tuple[float, float]:
    """Child process: extractive answers per second of the engine alone, pinned to one CPU, and CPU ms per answer.

    It answers what the server answers: the load test's messages (unique, so never cached) in conversations
    of ``messages`` turns (the timed load's are longer), each with the context the chat service gives the
    engine: the previous question and the top entries of the earlier answers. Their tag has the shape of a
    run's (8 random hex digits): until round 15 it was the word "engine", whose messages cost 4.7 ms of CPU
    each on one core against 5.3-5.5 ms with a run's tag (or "s1", "abcdefgh", "12345678"), so the ratio
    compared the server with an engine answering cheaper messages."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from rag.answer import AnswerEngine
    from rag.chat import HISTORY_WINDOW
    from settings import get_settings

    # One core, one thread; the query cache as the server has it: the messages are unique, so it only saves
    # embedding the same text twice within one answer, as it does in the server.
    engine = AnswerEngine(get_settings().rag.model_copy(update={"answer_mode": "extractive", "embed_threads": 1}))
    engine.warm_up()
    for question in QUESTIONS:
        engine.answer(question)
    turns = max(1, min(messages, HISTORY_WINDOW // 2))
    done, started, cpu = 0, time.perf_counter(), time.process_time()
    tops: list[str] = []
    previous = None
    tag = uuid.uuid4().hex[:8]  # like _measure's run tag
    while time.perf_counter() - started < seconds:
        n = done % turns
        if n == 0:
            tops, previous = [], None
        text = message_text(tag, done // turns, n)
        answer = engine.answer(text, previous_top_entries=list(tops), previous_question=previous)
        if answer.top_entry:
            tops.append(answer.top_entry)
        previous = text
        done += 1
    rate = done / (time.perf_counter() - started)
    return round(rate, 1), round(1000 * (time.process_time() - cpu) / done, 2)


def _engine_command(messages: int, seconds: float) -> list[str]:
    return [sys.executable, "-m", "bench.load", "--engine-rate", str(seconds), "--messages", str(messages)]


def _engine_rate_child(env: dict, messages: int, seconds: float = 6.0) -> tuple[float, float]:
    done = subprocess.run(_engine_command(messages, seconds), cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True, timeout=600)  # fmt: skip
    return tuple(json.loads(done.stdout.strip().splitlines()[-1]))


def _engine_pair(env: dict, messages: int, seconds: float = 6.0) -> float | None:
    """Answers per second of two engine children run at once, each pinned to its own CPU (None: fewer than two)."""
    if not hasattr(os, "sched_setaffinity") or len(cpus := sorted(os.sched_getaffinity(0))) < 2:
        return None
    # engine_rate pins itself to the first CPU it may use: here the one each child is given.
    children = [
        subprocess.Popen(_engine_command(messages, seconds), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         preexec_fn=functools.partial(os.sched_setaffinity, 0, {cpu}))
        for cpu in cpus[:2]
    ]  # fmt: skip
    rates = [json.loads(child.communicate(timeout=600)[0].strip().splitlines()[-1])[0] for child in children]
    return round(sum(rates), 1)


def _cpu_seconds(processes: list) -> tuple[float, float]:
    """User + system CPU seconds used so far by the given child processes and theirs, and by the given ones
    alone ((0, 0) without psutil)."""
    try:
        import psutil
    except ImportError:
        return 0.0, 0.0
    total = own = 0.0
    for process in processes:
        try:
            parent = psutil.Process(process.pid)
            family = [parent, *parent.children(recursive=True)]  # the answer worker processes too
        except psutil.Error:
            continue
        for member in family:
            try:
                times = member.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
            if member is parent:
                own += times.user + times.system
    return total, own


LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def _database_cpu(database_url: str) -> float | None:
    """User + system CPU seconds used so far by the PostgreSQL processes of this machine (backends, WAL writer,
    autovacuum...: every server's, when several run) when ``database_url`` is on it, else None."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if not url.drivername.startswith("postgresql") or (url.host or "localhost") not in LOCAL_HOSTS:
        return None
    try:
        import psutil
    except ImportError:
        return None
    total, seen = 0.0, False
    for process in psutil.process_iter(["name"]):
        if process.info["name"] != "postgres":
            continue
        try:
            times = process.cpu_times()
        except psutil.Error:  # exited meanwhile, or another user's process we may not read
            continue
        total, seen = total + times.user + times.system, True
    return total if seen else None


def _machine_cpu() -> tuple[float, float, float]:
    """The whole machine's CPU seconds so far, summed over its CPUs: busy, in all, and stolen by the
    hypervisor (a VM's CPU given to other guests) ((0, 0, 0) without psutil)."""
    try:
        import psutil
    except ImportError:
        return 0.0, 0.0, 0.0
    times = psutil.cpu_times()
    busy = times.user + times.nice + times.system + getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)
    steal = getattr(times, "steal", 0.0)
    return busy, busy + times.idle + getattr(times, "iowait", 0.0) + steal, steal


def _wait_ready(base_url: str, server: subprocess.Popen, log_path: Path, timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{base_url}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server not ready within {timeout} s")


if __name__ == "__main__":
    sys.exit(main())
