"""The real app for benchmarks and attack runs: `python app.py` on loopback, and Gradio events sent raw.

``start_app`` runs the app over a temporary SQLite database (no pytest needed); ``RawGradio``
sends Gradio events as the browser does (POST queue/join with a fn_index, then the SSE result),
which also reaches events kept out of the public API (``api_name=False``). Nothing heavy is
imported at module level.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # never anything else


def parse_ports(spec: str) -> range | None:
    """``"7940-7959"`` -> that range (inclusive); ``""`` -> None (the OS picks free ports)."""
    if not spec:
        return None
    low, _, high = spec.partition("-")
    return range(int(low), int(high or low) + 1)


def free_port(ports: range | None = None, taken: set[int] | None = None) -> int:
    """A TCP port free on loopback, from ``ports`` when given (skipping ``taken``, which it then joins)."""
    taken = taken if taken is not None else set()
    for port in ports if ports is not None else [0]:
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            found = sock.getsockname()[1]
        taken.add(found)
        return found
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")  # type: ignore[union-attr]


@dataclass(frozen=True)
class LiveApp:
    """A running `python app.py`: its URL, database and log."""

    url: str
    db_url: str
    db_path: Path
    log_path: Path

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run a read-only query on the app's SQLite database (a fresh connection each time)."""
        connection = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    def count(self, table: str, where: str = "1=1", params: tuple = ()) -> int:
        """Number of rows of ``table`` matching ``where``."""
        return self.query(f"SELECT COUNT(*) FROM {table} WHERE {where}", params)[0][0]

    def log(self, tail: int = 4000) -> str:
        """The last ``tail`` characters of the app's stdout and stderr."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-tail:]


def clean_environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default os.environ) without the app's settings: the child runs on the defaults it is given."""
    base = os.environ if base is None else base
    return {k: v for k, v in base.items() if not k.startswith("MOBILIA_") and k not in ("DATABASE_URL", "REDIS_URL")}


def wait_http(
    url: str, process: subprocess.Popen, timeout: float, ok: Callable[[bytes], bool] | None = None, interval: float = 0.5
) -> None:
    """Poll ``url`` every ``interval`` s until it answers 200 (and ``ok(body)``); RuntimeError if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with code {process.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200 and (ok is None or ok(response.read())):
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(interval)
    raise TimeoutError(f"{url} not ready within {timeout:.0f} s")


def stop_group(process: subprocess.Popen, timeout: float = 15) -> None:
    """Stop the process and everything it started (its own process group: evaluation runs included)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # leftovers of the group (children that ignored SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)


@contextlib.contextmanager
def start_app(workdir: Path, env: Mapping[str, str], port: int, timeout: float = 240,
              ready: Callable[[bytes], bool] | None = None) -> Iterator[LiveApp]:  # fmt: skip
    """`python app.py` on 127.0.0.1:``port`` over a SQLite DB in ``workdir``; stopped (whole group) on exit.

    ``env`` is the child's whole environment (see ``clean_environ``) apart from the host, port and
    database set here. Waits for the page, then for ``/api/v1/model-status`` to satisfy ``ready``.
    """
    db_path = workdir / "app.db"
    db_url = f"sqlite:///{db_path}"
    log_path = workdir / "app.log"
    url = f"http://{HOST}:{port}/"
    child_env = {**env, "MOBILIA_HOST": HOST, "MOBILIA_PORT": str(port), "MOBILIA_PUBLIC_URL": url.rstrip("/"),
                 "DATABASE_URL": db_url, "PYTHONUNBUFFERED": "1"}  # fmt: skip
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=child_env, stdout=log_file,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        app = LiveApp(url=url, db_url=db_url, db_path=db_path, log_path=log_path)
        try:
            started = time.monotonic()
            try:
                wait_http(url, process, timeout)
                wait_http(f"{url}api/v1/model-status", process, timeout - (time.monotonic() - started), ready)
            except (RuntimeError, TimeoutError) as exc:
                raise RuntimeError(f"{exc}\n{app.log()}") from None
            yield app  # errors of the caller's block pass through as they are
        finally:
            stop_group(process)


class EventFailed(RuntimeError):
    """A Gradio event ended in an error (or without a result)."""


@dataclass(frozen=True)
class GradioEvent:
    """One event of the Blocks config: its fn_index, trigger and input/output component ids."""

    fn_index: int
    trigger_id: int
    inputs: list[int]
    outputs: list[int]


class RawGradio:
    """Gradio events sent as the browser sends them: POST queue/join with a fn_index, then the SSE result."""

    def __init__(self, url: str, timeout: float = 60) -> None:
        import httpx

        self.http = httpx.Client(base_url=url, timeout=timeout)  # the read timeout is the hang guard
        self.config = self.http.get("config").json()
        self.components = {c["id"]: c for c in self.config["components"]}

    def _key(self, component_id: int) -> str | None:
        props = self.components.get(component_id, {}).get("props", {})
        return props.get("elem_id") or props.get("label")

    def event(self, elem_id: str, trigger: str = "click") -> GradioEvent:
        """The event ``trigger`` of the component with ``elem_id`` (KeyError when the app has none)."""
        target = next((i for i, c in self.components.items() if c.get("props", {}).get("elem_id") == elem_id), None)
        dependency = next((d for d in self.config["dependencies"] if [target, trigger] in d["targets"]), None)
        if dependency is None:
            raise KeyError(f"no {trigger} event on #{elem_id}")
        return GradioEvent(dependency["id"], target, dependency["inputs"], dependency["outputs"])

    def load_event(self, elem_id: str) -> GradioEvent:
        """The page-load event that writes the component with ``elem_id`` (KeyError when none does)."""
        target = next((i for i, c in self.components.items() if c.get("props", {}).get("elem_id") == elem_id), None)
        for dependency in self.config["dependencies"]:
            loads = [t for t in dependency["targets"] if t[1] == "load"]
            if target in dependency["outputs"] and loads:
                return GradioEvent(dependency["id"], loads[0][0], dependency["inputs"], dependency["outputs"])
        raise KeyError(f"no page-load event writes #{elem_id}")

    def fill(self, event: GradioEvent, values: Mapping[str, Any]) -> list:
        """The event's inputs: ``values`` by elem_id or label, None for session state, else the component's default."""
        data = []
        for component_id in event.inputs:
            component, key = self.components[component_id], self._key(component_id)
            if key in values:
                data.append(values[key])
            elif component.get("type") == "state":
                data.append(None)  # the server uses the session's value
            else:
                data.append(component.get("props", {}).get("value"))
        return data

    def named(self, event: GradioEvent, output: list) -> dict[str, Any]:
        """The event's outputs by elem_id (or label)."""
        return {self._key(i) or str(i): value for i, value in zip(event.outputs, output, strict=False)}

    def messages(self, event: GradioEvent, data: list, session_hash: str, headers: dict | None = None,
                 deadline_s: float = 120, params: dict | None = None) -> Iterator[dict]:  # fmt: skip
        """The event's SSE messages until it completes; TimeoutError past ``deadline_s``.

        ``params`` is the page's query string (``gr.Request.query_params``), as the browser client sends it.
        """
        body = {"data": data, "fn_index": event.fn_index, "trigger_id": event.trigger_id,
                "session_hash": session_hash, "event_data": None}  # fmt: skip
        joined = self.http.post("gradio_api/queue/join", json=body, headers=headers, params=params)
        joined.raise_for_status()
        event_id = joined.json().get("event_id")
        deadline = time.monotonic() + deadline_s
        with self.http.stream("GET", "gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
            for line in stream.iter_lines():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"event {event.fn_index} still running after {deadline_s:.0f} s")
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") not in (None, event_id):
                    continue
                yield message
                if message.get("msg") in ("process_completed", "close_stream", "unexpected_error"):
                    return

    def call(self, event: GradioEvent | tuple, data: list, session_hash: str | None = None,
             headers: dict | None = None, deadline_s: float = 120, params: dict | None = None) -> list:  # fmt: skip
        """Run the event and return its output values (EventFailed on an error)."""
        if isinstance(event, tuple):
            event = GradioEvent(event[0], event[1], [], [])
        for message in self.messages(event, data, session_hash or uuid.uuid4().hex, headers, deadline_s, params):
            if message.get("msg") == "process_completed":
                if not message.get("success"):
                    raise EventFailed(str(message.get("output", {}).get("error") or message)[:500])
                return message["output"]["data"]
        raise EventFailed("the event stream ended without a result")

    def close(self) -> None:
        self.http.close()
