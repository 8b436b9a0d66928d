"""Memory and idle CPU of the serving process: `python app.py` (UI + API, extractive) under API load.

    python -m bench.memory [--customers 200] [--duration 60] [--idle 30]

Starts the app on a free loopback port over a temp SQLite database (per-client limits lifted: every
simulated customer comes from 127.0.0.1), measures its CPU use while idle with no client (`--idle`
seconds, after the warm-up), runs `bench.load`'s customers against its API, samples its RSS, then
measures idle CPU again once they are gone. Prints one JSON object with the load average. The
figures of the serving process come with those of all its processes (the answer workers): RSS
counts the pages they share once per process, PSS splits them, USS counts what each holds alone.
Targets (issue 14): peak RSS < 600 MB after 200 customers for 60 s; idle CPU < 1 % of a core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.load import HOST, _free_port, _load, _percentile

ROOT = Path(__file__).resolve().parent.parent


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m bench.memory`."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--customers", type=int, default=200, help="concurrent API customers (max 1000)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (max 600)")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of each idle CPU measurement")
    parser.add_argument("--think-time", type=float, default=0.5, help="seconds a customer waits between messages")
    return parser


def _wait_ready(base: str, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    """The page and the API answer, and a first chat message is answered (knowledge base loaded)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"app exited with code {proc.returncode}")
        try:
            page = httpx.get(f"{base}/", timeout=2)
            health = httpx.get(f"{base}/api/v1/health", timeout=2)
            if page.status_code == 200 and health.status_code == 200:
                first = httpx.post(  # answered once the knowledge base is loaded
                    f"{base}/api/v1/chat/message",
                    timeout=timeout,
                    json={"message": "Bonjour", "user_info": {"full_name": "Prêt Test", "phone": "0600000001"}},
                )
                if first.status_code == 200:
                    return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"app not ready within {timeout} s")


def family(process) -> list:
    """The process and its descendants (the answer worker processes, multiprocessing's resource tracker)."""
    return [process, *process.children(recursive=True)]


def _cpu(processes) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except Exception:  # psutil.Error: it exited meanwhile
            continue
        total += times.user + times.system
    return total


def idle_cpu_percent(process, seconds: float) -> float:
    """CPU used by the process and its descendants (all threads) over `seconds`, in % of one core."""
    processes = family(process)
    before = _cpu(processes)
    time.sleep(seconds)
    return round(100 * (_cpu(processes) - before) / seconds, 2)


def family_memory(process) -> dict:
    """Resident memory of the process and its descendants: RSS, PSS (shared pages split among the processes
    that map them: the workers forked from one engine share most of theirs) and USS (pages of one process only)."""
    out = {"processes": 0, "rss_mb": 0.0, "pss_mb": 0.0, "uss_mb": 0.0}
    for member in family(process):
        try:
            info = member.memory_full_info()
        except Exception:  # psutil.Error
            continue
        out["processes"] += 1
        for key in ("rss", "pss", "uss"):
            out[f"{key}_mb"] += getattr(info, key, 0) / 2**20
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in out.items()}


def peak_rss_mb(pid: int) -> float | None:
    """The kernel's high-water mark of the process' resident memory (VmHWM)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print JSON."""
    import psutil

    args = make_parser().parse_args(argv)
    customers, duration = min(max(args.customers, 1), 1000), min(max(args.duration, 1.0), 600.0)
    port = _free_port()
    base = f"http://{HOST}:{port}"
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "MOBILIA_PORT": str(port),
            "MOBILIA_HOST": HOST,
            "DATABASE_URL": f"sqlite:///{tmp}/memory.db",
            "MOBILIA_LOG_LEVEL": "WARNING",
            "MOBILIA_SECRET_KEY": secrets.token_urlsafe(32),
            "HF_HUB_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "MOBILIA_RAG__ANSWER_MODE": "extractive",
            "MOBILIA_API__RATE_LIMIT_IP": "1000000/minute",
            "MOBILIA_API__RATE_LIMIT_CONVERSATIONS_CLIENT": "1000000/hour",
        }
        log_path = Path(tmp) / "app.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
            )
        try:
            _wait_ready(base, proc)
            app = psutil.Process(proc.pid)
            time.sleep(5)  # let the warm-up thread finish its first query
            rss_ready = round(app.memory_info().rss / 2**20, 1)
            all_ready = family_memory(app)
            idle_fresh = idle_cpu_percent(app, args.idle)
            samples: list[float] = []
            pss_samples: list[float] = []
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(0.5):
                    samples.append(app.memory_info().rss / 2**20)
                    if len(samples) % 4 == 0:  # every 2 s: reading every mapping costs some CPU
                        pss_samples.append(family_memory(app)["pss_mb"])

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.monotonic()
            stats = asyncio.run(_load([base], customers, duration, args.think_time, uuid.uuid4().hex[:8]))
            wall = time.monotonic() - t0
            stop.set()
            sampler.join()
            time.sleep(5)  # connections close, queued work ends
            idle_after = idle_cpu_percent(app, args.idle)
            peak = peak_rss_mb(proc.pid)
            rss_end = round(app.memory_info().rss / 2**20, 1)
            all_end = family_memory(app)
            worker_peaks = [peak_rss_mb(child.pid) for child in app.children(recursive=True)]
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    out = {
        "benchmark": "memory",
        "rss_ready_mb": rss_ready,
        "idle_cpu_percent_fresh": idle_fresh,
        "load": {
            "customers": customers,
            "duration_s": round(wall, 1),
            "accepted": len(stats["accepted"]),
            "accepted_per_s": round(len(stats["accepted"]) / wall, 1),
            "rate_limited_429": len(stats["limited"]),
            "errors": len(stats["errors"]),
            "error_samples": sorted(set(stats["errors"]))[:5],
            "transport_retries": len(stats.get("retried", [])),
            "latency_ms": {"p50": _percentile(stats["latency"], 0.5), "p95": _percentile(stats["latency"], 0.95)},
        },
        "peak_rss_mb": peak if peak is not None else round(max(samples, default=0.0), 1),
        "rss_after_load_mb": rss_end,
        # With answer worker processes (RagConfig.answer_processes) the app is several processes.
        "all_processes_ready": all_ready,
        "all_processes_after_load": all_end,
        "all_processes_peak_pss_mb": round(max(pss_samples, default=all_end["pss_mb"]), 1),
        "child_peak_rss_mb": worker_peaks,
        "idle_cpu_percent_after_load": idle_after,
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]},
        "cpus": os.cpu_count(),
    }
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
