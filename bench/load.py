"""API load test: concurrent simulated customers on loopback against POST /api/v1/chat/message.

    python -m bench.load [--customers 200] [--duration 60] [--database-url URL]

Starts the API (extractive answers) in a child process on 127.0.0.1 over a fresh database (a temp
SQLite file unless ``--database-url``, e.g. the one ``bash scripts/postgres.sh`` prints; its
tables are used as they are; messages are tagged per run), then runs ``--customers`` asyncio
customers for ``--duration`` seconds: each opens a conversation, then sends uniquely numbered
messages. 429 answers (the per-conversation limit, on purpose) are counted apart; any other
non-200 or transport error is an error. Afterwards every accepted message must be stored
exactly once and no refused one at all. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
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
    parser.add_argument("--think-time", type=float, default=0.5, help="seconds a customer waits between messages")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def serve(args: argparse.Namespace) -> None:
    """Child process: the API alone (no Gradio) under uvicorn on loopback."""
    import logging
    import secrets

    import uvicorn

    from api import create_api
    from services import build_services
    from settings import get_settings

    logging.basicConfig(level=logging.WARNING)
    settings = get_settings(
        database_url=args.database_url,
        host=HOST,
        port=args.port,
        secret_key=secrets.token_urlsafe(32),
        rag={"answer_mode": "extractive"},
        # Every simulated customer comes from loopback: per-client limits are lifted, the per-conversation one stays.
        api={"rate_limit_ip": "1000000/minute", "rate_limit_conversations_client": "1000000/hour",
             "rate_limit_conversation": args.conversation_limit},
    )
    services = build_services(settings)
    services.db.migrate()
    services.engine.warm_up()
    services.ready.set()
    uvicorn.run(
        create_api(services), host=HOST, port=args.port, log_level="warning", backlog=2048, timeout_keep_alive=120
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


async def _customer(index: int, client, deadline: float, think: float, stats: dict) -> None:
    """One customer: open a conversation, then send numbered messages until the deadline."""
    phone = f"06{index:08d}"
    key, conversation_id, n = None, None, 0
    while time.monotonic() < deadline:
        text = f"{QUESTIONS[n % len(QUESTIONS)]} [{stats['run']} client {index} message {n}]"
        body: dict = {"message": text}
        headers = {}
        if conversation_id is None:
            body["user_info"] = {"full_name": f"Client Test {chr(65 + index % 26)}", "phone": phone}
        else:
            body["conversation_id"] = conversation_id
            headers["X-Conversation-Key"] = key
        started = time.perf_counter()
        try:
            response = await client.post("/api/v1/chat/message", json=body, headers=headers)
        except Exception as exc:  # transport error: counted, the customer goes on
            stats["errors"].append(f"{type(exc).__name__}: {exc}"[:200])
            await asyncio.sleep(think)
            continue
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code == 200:
            data = response.json()
            conversation_id = data["conversation_id"]
            key = data["conversation_key"] or key
            stats["accepted"].append(text)
            stats["latency"].append(elapsed)
            n += 1
            await asyncio.sleep(think)
        elif response.status_code == 429:
            stats["limited"].append(text)
            n += 1
            retry = float(response.headers.get("Retry-After", "1"))
            await asyncio.sleep(min(retry, max(0.0, deadline - time.monotonic())))
        else:
            stats["errors"].append(f"HTTP {response.status_code}: {response.text[:200]}")
            await asyncio.sleep(think)


async def _load(base_url: str, customers: int, duration: float, think: float, run: str) -> dict:
    import httpx

    stats: dict = {"run": run, "accepted": [], "limited": [], "errors": [], "latency": []}
    limits = httpx.Limits(max_connections=customers, max_keepalive_connections=customers)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
        deadline = time.monotonic() + duration
        await asyncio.gather(*(_customer(i, client, deadline, think, stats) for i in range(customers)))
    return stats


def _check_storage(database_url: str, run: str, accepted: list[str], limited: list[str]) -> dict:
    """Every accepted message stored exactly once, no refused message stored."""
    from sqlalchemy import func, select

    from storage import Database, Message

    db = Database(database_url)
    try:
        with db.session() as s:
            rows = s.execute(
                select(Message.content, func.count())
                .where(Message.role == "user", Message.content.contains(f"[{run} client "))
                .group_by(Message.content)
            ).all()
    finally:
        db.dispose()
    stored = {content: count for content, count in rows if f"[{run} client " in content}
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
    customers, duration = min(max(args.customers, 1), 1000), min(max(args.duration, 1.0), 600.0)
    run = uuid.uuid4().hex[:8]  # tags this run's messages (a reused database may hold older ones)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite:///{Path(tmp) / 'load.db'}"
        port = _free_port()
        log_path = Path(tmp) / "server.log"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
        command = [
            sys.executable,
            "-m",
            "bench.load",
            "--serve",
            "--port",
            str(port),
            "--database-url",
            database_url,
            "--conversation-limit",
            args.conversation_limit,
        ]
        with log_path.open("wb") as log_file:
            server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            _wait_ready(f"http://{HOST}:{port}", server, log_path)
            t0 = time.monotonic()
            stats = asyncio.run(_load(f"http://{HOST}:{port}", customers, duration, args.think_time, run))
            wall = time.monotonic() - t0
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        try:
            storage = _check_storage(database_url, run, stats["accepted"], stats["limited"])
        except Exception as exc:  # still print the load figures
            storage = {"check_failed": f"{type(exc).__name__}: {exc}"[:300]}
    backend = database_url.split(":", 1)[0]
    result = {
        "database": backend,
        "customers": customers,
        "duration_s": round(wall, 1),
        "requests": len(stats["accepted"]) + len(stats["limited"]) + len(stats["errors"]),
        "accepted": len(stats["accepted"]),
        "rate_limited_429": len(stats["limited"]),
        "errors": len(stats["errors"]),
        "error_samples": sorted(set(stats["errors"]))[:5],
        "accepted_per_s": round(len(stats["accepted"]) / wall, 1),
        "latency_ms": {
            "p50": _percentile(stats["latency"], 0.50),
            "p95": _percentile(stats["latency"], 0.95),
            "max": _percentile(stats["latency"], 1.0),
        },
        "storage": storage,
        "stored_exactly_once": not any(storage.values()),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0 if result["errors"] == 0 and result["stored_exactly_once"] else 1


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
