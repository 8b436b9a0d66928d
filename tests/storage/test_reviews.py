"""Review decisions on SQLite and PostgreSQL: one row per candidate, corrections update it, filters."""

from __future__ import annotations

import pytest

from storage.reviews import ReviewRepository

pytestmark = pytest.mark.all_backends


def _values(**extra) -> dict:
    return {"source": "thumbs_down", "category": "forfait", "question": "5G forfait 2 € ?", "bot_answer": "…",
            "details": "Commentaire du client : non", "reference_answer": "Pas de 5G.", "status": "approved",
            "destination": "training", "entry_id": None, "reviewer": "t1", **extra}  # fmt: skip


def test_save_correct_and_list(db) -> None:
    repo = ReviewRepository(db)
    first = repo.save("feedback:1", **_values())
    repo.save("ticket:4", **_values(source="escalation", destination="kb", entry_id="for-001"))
    repo.save("gap:9", **_values(source="gap", status="rejected", destination=None, reference_answer=None))
    corrected = repo.save("feedback:1", **_values(reference_answer="Le Forfait 2€ n'a pas la 5G.", reviewer="a1"))
    assert corrected.id == first.id and repo.get("feedback:1").reference_answer == "Le Forfait 2€ n'a pas la 5G."
    assert repo.decided_keys() == {"feedback:1", "ticket:4", "gap:9"}
    assert [r.source_key for r in repo.list(status="approved", destinations=("training", "both"))] == ["feedback:1"]
    assert {r.source_key for r in repo.list(status="approved")} == {"feedback:1", "ticket:4"}
    assert repo.get("gap:404") is None


def test_invalid_values_are_refused(db) -> None:
    repo = ReviewRepository(db)
    with pytest.raises(ValueError):
        repo.save("feedback:1", **_values(destination="everywhere"))
    with pytest.raises(ValueError):
        repo.save("feedback:1", **_values(status="maybe"))
    with pytest.raises(ValueError):
        repo.save("feedback:1", **_values(), password="x")
    assert repo.decided_keys() == set()
