"""KB repository on SQLite and PostgreSQL: entries in the loaders' order, revisions, published snapshots."""

from __future__ import annotations

import pytest

from storage.kb import KbRepository, entry_dict

pytestmark = pytest.mark.all_backends


def _entry(entry_id: str, source: str, answer: str = "Réponse.") -> dict:
    return {"id": entry_id, "title": entry_id, "answer": answer, "category": "facturation", "questions": [entry_id],
            "tags": [], "links": [], "source": source, "kind": "faq"}  # fmt: skip


def test_import_keeps_the_loaders_order_and_publishes(db) -> None:
    repo = KbRepository(db)
    entries = [_entry("b1", "faq/b.json"), _entry("b2", "faq/b.json"), _entry("z", "faq-x/a.json"),
               _entry("a1", "faq/a.json")]  # fmt: skip
    assert repo.replace_all(entries, author="seed") == 4
    # sorted like pathlib (by path parts): faq/ before faq-x/, then the position within the file
    assert [r.id for r in repo.list()] == ["a1", "b1", "b2", "z"]
    assert {r.status for r in repo.list()} == {"published"}
    assert repo.count() == 4
    assert [r.action for r in repo.revisions("b1")] == ["import"]


def test_save_records_who_what_and_before_after(db) -> None:
    repo = KbRepository(db)
    repo.replace_all([_entry("a", "faq/a.json")], author="seed")
    row = repo.save({**_entry("a", "faq/a.json", "Nouvelle réponse."), "questions": ["a", "autre"]},
                    author="trainer1", action="update")  # fmt: skip
    assert row.status == "draft" and row.author == "trainer1"
    latest = repo.revisions("a")[0]
    assert (latest.action, latest.author) == ("update", "trainer1")
    assert latest.before["answer"] == "Réponse." and latest.after["answer"] == "Nouvelle réponse."
    assert entry_dict(repo.get("a"))["questions"] == ["a", "autre"]
    created = repo.save(_entry("n", "faq/a.json"), author="agent1", action="propose")
    assert created.position == 1  # appended to its file
    repo.mark_published(["a"])
    assert repo.get("a").status == "published" and repo.get("n").status == "draft"
    with pytest.raises(ValueError):
        repo.save({**_entry("x", "faq/a.json"), "kind": "video"}, author="t", action="create")


def test_versions_are_snapshots(db) -> None:
    repo = KbRepository(db)
    first = repo.add_version([_entry("a", "faq/a.json")], author="seed", fingerprint="f1")
    second = repo.add_version([_entry("a", "faq/a.json", "v2")], author="admin", fingerprint="f2", gate={"ok": True})
    assert repo.version(first.id).entries[0]["answer"] == "Réponse."
    assert [v.id for v in repo.versions()] == [second.id, first.id]
    assert repo.version(second.id).gate == {"ok": True}
