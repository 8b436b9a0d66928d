"""A run's heartbeat: alive while fresh and its process lives, gone once exited, stale or dead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from training.heartbeat import HEARTBEAT_FILE, beating, read_beat, write_beat


def test_a_fresh_beat_of_a_live_process_is_alive(tmp_path) -> None:
    write_beat(tmp_path)
    assert read_beat(tmp_path)["pid"] == os.getpid() and beating(tmp_path)
    write_beat(tmp_path, state="exited")
    assert not beating(tmp_path), "a clean exit stops counting at once"


def test_stale_or_dead_or_missing_beats_are_not_alive(tmp_path) -> None:
    assert not beating(tmp_path)  # no heartbeat at all
    write_beat(tmp_path)
    beat = read_beat(tmp_path)
    (tmp_path / HEARTBEAT_FILE).write_text(json.dumps({**beat, "at": time.time() - 60}), encoding="utf-8")
    assert not beating(tmp_path, stale_after=30)
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write_beat(tmp_path, pid=int(done.stdout))  # fresh, but its process is gone (same host: checked)
    assert not beating(tmp_path)
    (tmp_path / HEARTBEAT_FILE).write_text(json.dumps({**beat, "host": "elsewhere", "pid": 1}), encoding="utf-8")
    assert beating(tmp_path), "another host's run counts while its beats are fresh"


def test_the_subprocess_beats_by_itself_and_says_when_it_exits(tmp_path) -> None:
    child = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from training.heartbeat import start_beating; start_beating(sys.argv[1], every=0.1); "
        "print('up', flush=True); sys.stdin.readline()"), str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert child.stdout.readline().strip() == "up"
    first = read_beat(tmp_path)["at"]
    assert beating(tmp_path) and read_beat(tmp_path)["pid"] == child.pid
    deadline = time.monotonic() + 30
    while read_beat(tmp_path)["at"] == first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert read_beat(tmp_path)["at"] > first, "beats again without being asked"
    child.communicate("\n", timeout=30)
    assert read_beat(tmp_path)["state"] == "exited" and not beating(tmp_path)
