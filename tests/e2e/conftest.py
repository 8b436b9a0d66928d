"""End-to-end fixtures: the real app (`python app.py`) on a free port, a SQLite DB and Chromium."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.live import LiveApp
from bench.live import start_app as start_live_app
from settings import ROOT
from tests.conftest import free_port

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
ANSWER_TIMEOUT_MS = 60_000  # the first answer may wait for the background warm-up of the model
BOT = "#chatbot [data-testid='bot']"
# Every e2e client comes from loopback: the per-client limits are lifted (tests/e2e/test_abuse.py sets them
# back); the per-conversation message limit stays on.
LIFTED_CLIENT_LIMITS = {
    "MOBILIA_API__RATE_LIMIT_CONVERSATIONS_CLIENT": "1000000/hour",
    "MOBILIA_API__RATE_LIMIT_LOGIN": "1000000/minute",
    "MOBILIA_API__RATE_LIMIT_LOGIN_ACCOUNT": "1000000/minute",
}


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
    env = {
        **os.environ,
        "MOBILIA_RAG__INDEX_DIR": str(shipped_config.index_dir),
        "MOBILIA_RAG__KB_DIR": str(shipped_config.kb_dir),
        "MOBILIA_RAG__EMBEDDING_MODEL": shipped_config.embedding_model,
        "MOBILIA_RUNS_DIR": str(workdir / "runs"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        **LIFTED_CLIENT_LIMITS,
        **(extra_env or {}),
    }
    env.pop("MOBILIA_DATABASE_URL", None)
    with start_live_app(workdir, env, port or free_port(), timeout=STARTUP_TIMEOUT_S) as app:
        yield app


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


def wait_db(predicate: Callable[[], bool], timeout_s: float = 120, message: str = "DB condition") -> None:
    """Poll the app's database until `predicate()` holds (the UI may update before the commit is read);
    the timeout only stops a hang: a busy CI machine may take many seconds."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {message}")
        time.sleep(0.1)


def submit_contact(page, name: str, phone: str, email: str = "") -> None:
    """Fill the customer's contact form and send it (the caller checks what opens)."""
    page.locator("#contact-name textarea, #contact-name input").first.fill(name)
    page.locator("#contact-phone textarea, #contact-phone input").first.fill(phone)
    page.locator("#contact-email textarea, #contact-email input").first.fill(email)
    page.locator("#contact-submit").click()


def send_message(page, text: str, timeout_ms: int = ANSWER_TIMEOUT_MS):
    """Send `text` in the customer's chat, wait until the answer replaced the "…" placeholder; return it."""
    before = page.locator(BOT).count()
    page.locator("#chat-input textarea").fill(text)
    page.locator("#chat-send").click()
    page.wait_for_function(
        """([selector, before]) => {
            const bots = document.querySelectorAll(selector);
            return bots.length > before && bots[bots.length - 1].innerText.trim() !== "…";
        }""",
        arg=[BOT, before],
        timeout=timeout_ms,
    )
    return page.locator(BOT).nth(before)


def pick(page, dropdown: str, option: str) -> None:
    """Choose `option` in the Gradio dropdown `dropdown` (a CSS selector)."""
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option, exact=True).click()
