"""Knowledge-base tab in Chromium: agents do not see it (nor the datasets tab); an admin's index update reports its state."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import staff_login

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
PASSWORD = "kb-admin-password-1"


def test_only_admins_see_the_kb_tab_and_can_update_the_index(create_staff, browser, page: Page) -> None:
    create_staff("kb.agent", "agent", PASSWORD)
    create_staff("kb.admin", "admin", PASSWORD)

    staff_login(page, "kb.agent", PASSWORD)
    expect(page.get_by_role("tab", name="🎫 Tickets")).to_be_visible()
    expect(page.get_by_role("tab", name="📚 Base de connaissances")).to_have_count(0)
    expect(page.get_by_role("tab", name="🗂️ Jeux de données")).to_have_count(0)
    page.locator("#staff-logout").click()

    staff_login(page, "kb.admin", PASSWORD)
    page.get_by_role("tab", name="📚 Base de connaissances").click()
    page.get_by_role("tab", name="⚙️ Index").click()
    expect(page.locator("#kb-summary")).to_contain_text("Index en service")
    expect(page.locator("#kb-summary")).to_contain_text("entrées")
    page.locator("#kb-rebuild").click()
    expect(page.locator("#kb-result")).to_contain_text("Index déjà à jour", timeout=60_000)
