"""Analytics exports from the tab: the CSV exists while Gradio takes it, then nothing is left in /tmp."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

from tickets.analytics import AnalyticsService
from tickets.users import StaffService
from ui.analytics_tab import AnalyticsCallbacks


def _exports() -> set[Path]:
    tmp = Path(tempfile.gettempdir())
    return {*tmp.glob("mobiliachat-export*"), *tmp.glob("mobiliachat-exports/*")}


def test_export_files_are_deleted_once_served(db) -> None:
    staff = StaffService(db)
    principal = staff.create_user("analyst", "correct horse battery", "agent")
    callbacks = AnalyticsCallbacks(SimpleNamespace(staff=staff, analytics=AnalyticsService(db)))
    before = _exports()

    for _ in range(3):
        steps = callbacks.export(principal, "tickets", "2026-03-10", "2026-03-11")
        file, message = next(steps)  # Gradio copies the file into its cache here, then resumes the generator
        path = Path(file["value"])
        assert message == "" and path.is_file() and path.read_text(encoding="utf-8-sig").startswith("id,")
        assert list(steps) == []
        assert not path.exists() and not path.parent.exists()

    assert _exports() == before  # nothing accumulates in the temp folder


def test_refused_exports_write_nothing(db) -> None:
    staff = StaffService(db)
    callbacks = AnalyticsCallbacks(SimpleNamespace(staff=staff, analytics=AnalyticsService(db)))
    before = _exports()
    [(file, message)] = list(callbacks.export(None, "tickets", "2026-03-10", "2026-03-11"))
    assert file["value"] is None and message.startswith("⚠️")
    principal = staff.create_user("analyst", "correct horse battery", "agent")
    [(file, message)] = list(callbacks.export(principal, "customers", "2026-03-10", "2026-03-11"))
    assert file["value"] is None and "unknown export" in message
    assert _exports() == before
