"""The knowledge loop in Chromium: a 👎 on a wrong answer becomes a phrasing, tested, published behind the gate,
then a reviewed training example of the dataset built in the datasets tab.

Runs its own app (own database, own copy of the index) since it publishes a new KB version.
Screenshots go to $MOBILIA_SCREENS_DIR (default: the pytest temp folder).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import BOT, staff_login, start_app
from tests.e2e.test_chat_ui import dislike_button, open_chat, send

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
QUESTION = "La 5G est dispo avec le forfait à 2 euros ?"
RIGHT = "Le Forfait 2€ comprend 2 h d'appels"  # the answer of for-001
PASSWORD = "kb-trainer-password-1"
GATE_TIMEOUT_MS = 600_000  # candidate index + two passes over the evaluation sets, on a busy CPU


@pytest.fixture
def loop_app(tmp_path_factory, shipped_config):
    workdir = tmp_path_factory.mktemp("kb_loop")
    config = shipped_config.model_copy(update={"index_dir": workdir / "index"})
    shutil.copytree(shipped_config.index_dir, config.index_dir)
    data_config = workdir / "data.yaml"  # the datasets tab writes its build here, not in datasets/processed
    data_config.write_text(f"output: {{out_dir: {workdir / 'dataset'}}}\n", encoding="utf-8")
    port = int(os.environ["MOBILIA_TEST_PORT"]) if os.environ.get("MOBILIA_TEST_PORT") else None
    with start_app(workdir, config, port=port, extra_env={"MOBILIA_DATA_CONFIG": str(data_config)}) as app:
        yield app


def _fill(page: Page, elem_id: str, text: str) -> None:
    page.locator(f"#{elem_id} textarea, #{elem_id} input").first.fill(text)


def test_thumbs_down_to_published_fix(loop_app, browser, tmp_path: Path) -> None:
    import subprocess
    import sys

    screens = Path(os.environ.get("MOBILIA_SCREENS_DIR", tmp_path))
    screens.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "tickets.users", "--db", loop_app.db_url, "create", "--username",
                    "kb.trainer", "--role", "trainer"], input=PASSWORD + "\n", text=True, check=True, timeout=120)  # fmt: skip
    context = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 1400})
    context.set_default_timeout(60_000)
    customer = context.new_page()
    customer.goto(loop_app.url)
    open_chat(customer)
    answer = send(customer, QUESTION)
    expect(answer).not_to_contain_text(RIGHT)
    dislike_button(answer).click()
    _fill(customer, "feedback-comment", "Je demandais si la 5G est incluse dans le forfait 2 €.")
    customer.locator("#feedback-send").click()
    expect(customer.locator("#chat-status")).to_contain_text("votre commentaire a été transmis")
    customer.screenshot(path=str(screens / "1-customer-wrong-answer.png"), full_page=True)

    trainer = context.new_page()
    trainer.goto(loop_app.url)
    staff_login(trainer, "kb.trainer", PASSWORD)
    trainer.get_by_role("tab", name="📚 Base de connaissances").click()
    trainer.get_by_role("tab", name="🕳️ Lacunes").click()
    trainer.locator("#kbg-refresh").click()
    expect(trainer.locator("#kbg-table")).to_contain_text(QUESTION)
    expect(trainer.locator("#kbg-table")).to_contain_text("5G est incluse")
    _fill(trainer, "kbg-entry", "for-001")
    trainer.locator("#kbg-add").click()
    expect(trainer.locator("#kbg-message")).to_contain_text("ajoutée aux formulations de for-001")
    trainer.screenshot(path=str(screens / "2-trainer-gaps.png"), full_page=True)

    trainer.get_by_role("tab", name="✏️ Éditeur").click()
    _fill(trainer, "kbe-id", "for-001")
    trainer.locator("#kbe-open").click()
    expect(trainer.locator("#kbe-phrasings textarea")).to_have_value(lambda_contains(QUESTION))
    trainer.screenshot(path=str(screens / "3-trainer-editor.png"), full_page=True)

    trainer.get_by_role("tab", name="🔎 Banc de test").click()
    _fill(trainer, "kbb-question", QUESTION)
    trainer.locator("#kbb-run").click()
    expect(trainer.locator("#kbb-draft")).to_contain_text("for-001", timeout=GATE_TIMEOUT_MS)
    expect(trainer.locator("#kbb-draft")).to_contain_text(RIGHT)
    expect(trainer.locator("#kbb-published")).not_to_contain_text(RIGHT)
    trainer.screenshot(path=str(screens / "4-trainer-bench.png"), full_page=True)

    trainer.get_by_role("tab", name="🚀 Publication").click()
    _fill(trainer, "kbp-note", "5G et forfait 2 €")
    trainer.locator("#kbp-publish").click()
    expect(trainer.locator("#kbp-result")).to_contain_text("validé", timeout=GATE_TIMEOUT_MS)
    expect(trainer.locator("#kbp-result")).to_contain_text("ev-035")
    expect(trainer.locator("#kbp-journal")).to_contain_text("publication par kb.trainer")
    trainer.screenshot(path=str(screens / "5-trainer-published.png"), full_page=True)

    again = context.new_page()
    again.goto(loop_app.url)
    open_chat(again, "Jeanne Dupont")
    expect(send(again, QUESTION)).to_contain_text(RIGHT)
    expect(again.locator(BOT).last).to_contain_text(RIGHT)
    again.screenshot(path=str(screens / "6-customer-right-answer.png"), full_page=True)

    # The same 👎 in the review queue: the trainer writes the reference answer for the training set, then builds.
    trainer.bring_to_front()
    trainer.get_by_role("tab", name="🗂️ Jeux de données").click()
    trainer.locator("#dsr-refresh").click()
    expect(trainer.locator("#dsr-table")).to_contain_text(QUESTION)
    row = trainer.locator("#dsr-table").get_by_role("row").filter(has_text="👎 réponse").first
    expect(row).to_contain_text(QUESTION)
    row.get_by_role("gridcell").first.click()
    expect(trainer.locator("#dsr-context textarea")).to_have_value(lambda_contains("5G est incluse"))
    expect(trainer.locator("#dsr-question textarea")).to_have_value(QUESTION)
    _fill(trainer, "dsr-reference", "Le Forfait 2€ n'inclut pas la 5G : passez au Forfait Free 5G (Espace Abonné).")
    trainer.screenshot(path=str(screens / "7-trainer-review-queue.png"), full_page=True)
    trainer.locator("#dsr-approve").click()
    expect(trainer.locator("#dsr-message")).to_contain_text("Approuvé pour : jeu d'entraînement")
    expect(trainer.locator("#dsr-table")).not_to_contain_text(QUESTION)
    expect(trainer.locator("#dsr-reference textarea")).to_have_value("")
    trainer.get_by_role("tab", name="🏗️ Construction du jeu").click()
    trainer.locator("#dsb-build").click()
    expect(trainer.locator("#dsb-summary")).to_contain_text("Exemples issus de revues approuvées : 3", timeout=120_000)
    expect(trainer.locator("#dsb-summary")).to_contain_text("Anonymisation")
    expect(trainer.locator("#dsb-chart .js-plotly-plot")).to_be_visible()
    expect(trainer.locator("#dsb-preview")).to_contain_text("entraînement")
    trainer.screenshot(path=str(screens / "8-trainer-dataset-build.png"), full_page=True)
    context.close()


def lambda_contains(text: str):
    """A regex matching a value that contains `text`."""
    import re

    return re.compile(re.escape(text))
