"""UI label tables stay in step with the domain tables they describe."""

from __future__ import annotations

from tickets.users import AREA_ROLES


def test_every_role_has_a_french_label() -> None:
    from ui.staff_tab import ROLE_LABELS

    assert set(ROLE_LABELS) == {role for roles in AREA_ROLES.values() for role in roles}


def test_every_exportable_table_has_a_label() -> None:
    from tickets.analytics import EXPORTS
    from ui.analytics_tab import EXPORT_LABELS

    assert set(EXPORT_LABELS) == set(EXPORTS)
