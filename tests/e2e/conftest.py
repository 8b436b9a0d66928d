"""End-to-end fixtures: the real app (`python app.py`) on a free port, a SQLite DB and Chromium."""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from settings import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_TIMEOUT_S = 90
# Every e2e client comes from loopback: the per-client limits are lifted (tests/e2e/test_abuse.py sets them
# back); the per-conversation message limit stays on.
LIFTED_CLIENT_LIMITS = {
    "MOBILIA_API__RATE_LIMIT_CONVERSATIONS_CLIENT": "1000000/hour",
    "MOBILIA_API__RATE_LIMIT_LOGIN": "1000000/minute",
    "MOBILIA_API__RATE_LIMIT_LOGIN_ACCOUNT": "1000000/minute",
}


@dataclass(frozen=True)
class LiveApp:
    """The running app: its base URL and the SQLAlchemy URL of its database."""

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
        """Number of rows of `table` matching `where`."""
        return self.query(f"SELECT COUNT(*) FROM {table} WHERE {where}", params)[0][0]

    def log(self) -> str:
        """The app's stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = log_path.read_text(encoding="utf-8", errors="replace")
            pytest.fail(f"app.py exited with code {process.returncode} before serving:\n{log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.25)
    log = log_path.read_text(encoding="utf-8", errors="replace")
    pytest.fail(f"app.py did not answer HTTP 200 on {url} within {STARTUP_TIMEOUT_S} s:\n{log}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def live_app(tmp_path_factory, shipped_config):
    """Start `python app.py` once per session over a temp SQLite DB and the prebuilt shipped index.

    MOBILIA_TEST_PORT picks its port (when several people share the machine), else a free one.
    """
    port = int(os.environ["MOBILIA_TEST_PORT"]) if os.environ.get("MOBILIA_TEST_PORT") else None
    with start_app(tmp_path_factory.mktemp("live_app"), shipped_config, port=port) as app:
        yield app


@contextlib.contextmanager
def start_app(
    workdir: Path, shipped_config, extra_env: dict | None = None, port: int | None = None
) -> Iterator[LiveApp]:
    """`python app.py` over a temp SQLite DB in `workdir` and the prebuilt shipped index, stopped on exit."""
    db_path = workdir / "mobiliachat.db"
    db_url = f"sqlite:///{db_path}"
    log_path = workdir / "app.log"
    port = port or _free_port()
    env = {
        **os.environ,
        "MOBILIA_HOST": "127.0.0.1",
        "MOBILIA_PORT": str(port),
        "MOBILIA_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DATABASE_URL": db_url,
        "MOBILIA_RAG__INDEX_DIR": str(shipped_config.index_dir),
        "MOBILIA_RAG__KB_DIR": str(shipped_config.kb_dir),
        "MOBILIA_RAG__EMBEDDING_MODEL": shipped_config.embedding_model,
        "MOBILIA_RUNS_DIR": str(workdir / "runs"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        **LIFTED_CLIENT_LIMITS,
        **(extra_env or {}),
    }
    env.pop("MOBILIA_DATABASE_URL", None)
    url = f"http://127.0.0.1:{port}/"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "app.py"],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_up(url, process, log_path)
            yield LiveApp(url=url, db_url=db_url, db_path=db_path, log_path=log_path)
        finally:
            _stop(process)


@pytest.fixture(scope="session")
def _playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(_playwright):
    """Headless Debian Chromium driven by Playwright (no downloaded browser)."""
    browser = _playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def dialogs() -> list[str]:
    """Messages of every JS dialog (alert, confirm, prompt) the `page` opened."""
    return []


@pytest.fixture
def page(browser, live_app, dialogs):
    """A fresh browser context and page on the app; every JS dialog is recorded then dismissed."""
    context = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 1100})
    context.set_default_timeout(30_000)
    page = context.new_page()

    def on_dialog(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(live_app.url)
    yield page
    context.close()


def create_staff_account(db_url: str, username: str, role: str, password: str) -> None:
    """Create a staff account on an app's database through the documented CLI (password on stdin)."""
    result = subprocess.run(
        [sys.executable, "-m", "tickets.users", "--db", db_url, "create", "--username", username, "--role", role],
        input=password + "\n", capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.fixture
def create_staff(live_app):
    """Create a staff account on the live app's database through the documented CLI (password on stdin)."""

    def create(username: str, role: str, password: str) -> None:
        create_staff_account(live_app.db_url, username, role, password)

    return create


def staff_login(page, username: str, password: str) -> None:
    """Log in from the « Espace conseillers » tab and wait until the session shows the user."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="🔐 Espace conseillers").click()
    page.locator("#staff-username input").fill(username)
    page.locator("#staff-password input").fill(password)
    page.locator("#staff-login-btn").click()
    expect(page.locator("#staff-who")).to_contain_text(username)
