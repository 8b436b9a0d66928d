"""A run's heartbeat, written by the training or evaluation subprocess itself.

The replica that starts a run holds the run lease only while that replica lives; its subprocess has
a process group of its own and outlives it (kill -9 of the replica, say), still writing into the
shared runs_dir. So the subprocess writes ``heartbeat.json`` in its run folder every few seconds
(``{pid, host, at, state}``, state ``exited`` at a clean exit) and a replica that finds a fresh
heartbeat refuses to start a second run beside it. On the same host the pid is checked too, so a
run killed outright stops counting at once; elsewhere it stops counting once its beats are stale.
Standard library only: the subprocess imports it before anything heavy.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

HEARTBEAT_FILE = "heartbeat.json"
BEAT_EVERY_S = 2.0
STALE_AFTER_S = 30.0  # no beat for this long: the run is gone (a busy process still beats: the thread is tiny)


def write_beat(folder: str | Path, pid: int | None = None, state: str = "alive") -> None:
    """Write the heartbeat of the run in ``folder`` (atomically: a reader never sees half a file)."""
    path = Path(folder) / HEARTBEAT_FILE
    beat = {"pid": pid or os.getpid(), "host": socket.gethostname(), "at": time.time(), "state": state}
    partial = path.with_name(f".{HEARTBEAT_FILE}.{os.getpid()}")
    partial.write_text(json.dumps(beat), encoding="utf-8")
    os.replace(partial, path)


def start_beating(folder: str | Path, every: float = BEAT_EVERY_S) -> Callable[[], None]:
    """Beat now and every ``every`` seconds from a daemon thread, and ``exited`` at exit; returns stop()."""
    stopped = threading.Event()

    def beat() -> None:
        while not stopped.wait(every):
            with contextlib.suppress(OSError):  # a full or vanished disk must not kill the run; next beat retries
                write_beat(folder)

    def stop() -> None:
        if not stopped.is_set():
            stopped.set()
            with contextlib.suppress(OSError):
                write_beat(folder, state="exited")

    write_beat(folder)
    threading.Thread(target=beat, name="run-heartbeat", daemon=True).start()
    atexit.register(stop)
    return stop


def read_beat(folder: str | Path) -> dict | None:
    """The last heartbeat of the run in ``folder`` (None when there is none or it cannot be read)."""
    try:
        beat = json.loads((Path(folder) / HEARTBEAT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return beat if isinstance(beat, dict) else None


def _pid_alive(pid: int) -> bool:
    """True while process ``pid`` of this host runs (a zombie awaiting its reaper does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rpartition(")")[2].split()[0] != "Z"


def beating(folder: str | Path, stale_after: float = STALE_AFTER_S) -> bool:
    """True while the run in ``folder`` is alive by its heartbeat: fresh, not exited, its pid alive here."""
    beat = read_beat(folder)
    if beat is None or beat.get("state") != "alive":
        return False
    if time.time() - float(beat.get("at", 0)) > stale_after:
        return False
    if beat.get("host") == socket.gethostname() and isinstance(beat.get("pid"), int):
        return _pid_alive(beat["pid"])
    return True
