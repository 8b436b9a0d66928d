"""Start-up benchmark: seconds from `python app.py` to the served page and to a first answer.

    python -m bench.startup

Runs the app on a free port with a temporary SQLite database and the default index (build it
first with `python -m rag ingest`, as scripts/start.sh does). Prints one JSON object.
Targets (issue 14): page served <= 8 s and first answer <= 8 s after `python app.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.live import free_port, wait_http

ROOT = Path(__file__).resolve().parent.parent


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used so far by the process and its children (None without psutil)."""
    try:
        import psutil

        times = psutil.Process(pid).cpu_times()
    except Exception:
        return None
    return round(times.user + times.system + times.children_user + times.children_system, 2)


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m bench.startup` (no options: --help says what it measures)."""
    return argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.split("\n")[0])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print JSON."""
    make_parser().parse_args(argv)
    from gradio_client import Client

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MOBILIA_PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
               "MOBILIA_LOG_LEVEL": "WARNING"}
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_http(url, proc, timeout=300, interval=0.1)
            page_s = time.perf_counter() - t0
            page_cpu_s = _cpu_seconds(proc.pid)
            client = Client(url, verbose=False)
            client.predict("Jeanne Martin", "06 12 34 56 78", "", api_name="/start_chat")
            chat = client.predict("Comment télécharger ma facture ?", api_name="/send_message")[0]
            first_answer_s = time.perf_counter() - t0
            first_answer_cpu_s = _cpu_seconds(proc.pid)
            t1 = time.perf_counter()
            client.predict("Quel est le code APN ?", api_name="/send_message")
            warm_roundtrip_ms = (time.perf_counter() - t1) * 1000
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    answered = any("Sources" in str(m.get("content", "")) for m in chat if isinstance(m, dict))
    print(json.dumps({
        "benchmark": "startup",
        "page_ready_s": round(page_s, 2),
        "first_answer_s": round(first_answer_s, 2),
        "warm_roundtrip_ms": round(warm_roundtrip_ms, 1),
        # CPU seconds the app had used by then: the wall time it needs on an otherwise idle machine is
        # about this (start-up is mostly one thread), whatever else runs here now.
        "page_ready_cpu_s": page_cpu_s,
        "first_answer_cpu_s": first_answer_cpu_s,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "first_answer_has_sources": answered,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
