"""Evaluation tab in Chromium: a trainer runs a small comparison, reads the answers and proposes; an admin promotes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import staff_login

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
PASSWORD = "eval-trainer-password-1"
RUN_TIMEOUT_MS = 180_000


def test_trainer_compares_and_proposes_an_admin_promotes_and_rolls_back(create_staff, live_app, page: Page, browser,
                                                                       tmp_path) -> None:  # fmt: skip
    shots = Path(os.environ.get("MOBILIA_E2E_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    create_staff("eval.trainer", "trainer", PASSWORD)
    staff_login(page, "eval.trainer", PASSWORD)
    expect(page.get_by_role("tab", name="🎫 Tickets")).to_have_count(0)  # agents' area
    page.get_by_role("tab", name="📏 Évaluation").click()

    # Only the extractive baseline, 2 + 2 questions: the LLM candidates are covered by tests/training.
    candidates = page.locator("#eval-candidates")
    for name in ("smollm2-base", "smollm2-adapter"):
        candidates.get_by_label(name).uncheck()
    page.get_by_label("Questions de validation (0 : toutes)").fill("2")
    page.get_by_label("Questions par jeu étiqueté (0 : toutes)").fill("2")
    page.locator("#eval-start").click()
    expect(page.locator("#eval-status")).to_contain_text("terminée", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#eval-status")).to_contain_text("4/4 réponses")

    # The results are shown: metrics table, chart and the answers side by side.
    expect(page.locator("#eval-metrics")).to_contain_text("extractif", timeout=30_000)
    expect(page.locator("#eval-summary")).to_contain_text("validation : 2")
    expect(page.locator("#eval-answers")).to_contain_text("Question")
    expect(page.locator("#eval-chart .js-plotly-plot")).to_have_count(1)
    page.screenshot(path=str(shots / "evaluation_tab.png"), full_page=True)

    # A trainer only proposes: the live chat does not change.
    page.locator("#eval-promote-candidate input").click()
    page.get_by_role("option", name="extractif", exact=True).click()
    page.locator("#eval-promote").click()
    expect(page.locator("#eval-promote-message")).to_contain_text("Proposition enregistrée")
    expect(page.locator("#eval-current-model")).to_contain_text("réglages par défaut")
    expect(page.locator("#eval-journal")).to_contain_text("proposition")
    page.locator("#eval-rollback").click()
    expect(page.locator("#eval-promote-message")).to_contain_text("Seul un administrateur")

    # An admin sees the proposal, accepts it (promotion), then rolls back to the settings.
    create_staff("eval.admin", "admin", PASSWORD)
    context = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 1100})
    admin = context.new_page()
    admin.goto(live_app.url)
    staff_login(admin, "eval.admin", PASSWORD)
    admin.get_by_role("tab", name="📏 Évaluation").click()
    admin.locator("#eval-proposals input").click()
    admin.get_by_role("option", name="proposé par eval.trainer").first.click()
    admin.locator("#eval-accept").click()
    expect(admin.locator("#eval-promote-message")).to_contain_text("Proposition acceptée")
    expect(admin.locator("#eval-current-model")).to_contain_text("extractif (extractif)")
    expect(admin.locator("#eval-journal")).to_contain_text("promotion")
    state = live_app.query("SELECT value FROM app_state WHERE key = 'chat_model'")[0][0]
    assert "eval.admin" in state and "eval.trainer" in state and "evaluation:quick@" in state
    admin.locator("#eval-rollback").click()
    expect(admin.locator("#eval-promote-message")).to_contain_text("Retour à : réglages par défaut")
    expect(admin.locator("#eval-journal")).to_contain_text("retour arrière")
    context.close()
