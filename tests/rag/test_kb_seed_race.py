"""Replicas starting together on an empty database import the shipped seed once."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rag.kb import STATE_KEY, KnowledgeBase
from rag.sources import load_kb
from settings import RagConfig
from storage import AppStateRepository, Database
from storage.kb import KbRepository
from tests.conftest import SHIPPED_KB

ROOT = Path(__file__).resolve().parents[2]
SEED = """import sys
from pathlib import Path
from rag.kb import KnowledgeBase
from settings import RagConfig
from storage import Database
db = Database(sys.argv[1])
kb = KnowledgeBase(db, RagConfig(kb_dir=Path(sys.argv[2]), index_dir=Path(sys.argv[3])))
print("seeded" if kb.ensure_seeded() else "found")
"""


def _entry(entry_id: str) -> dict:
    return {"id": entry_id, "title": entry_id, "answer": "Réponse.", "category": "forfait", "questions": [entry_id],
            "tags": [], "links": [], "source": "faq/a.json", "kind": "faq"}  # fmt: skip


@pytest.mark.all_backends
def test_concurrent_seed_transactions_import_once(db) -> None:
    """Both transactions start on an empty KB at the same moment: exactly one commits its seed."""
    barrier = threading.Barrier(2)
    results: list[int | None] = []
    others = [Database(db._url) for _ in range(2)]

    def seed(database: Database) -> None:
        repo = KbRepository(database)
        barrier.wait(timeout=60)
        pointer = lambda vid: {"stack": [vid], "journal": []}  # noqa: E731
        results.append(repo.seed([_entry("a"), _entry("b")], author="seed", fingerprint="f", note="",
                                 pointer_key=STATE_KEY, pointer=pointer))  # fmt: skip

    threads = [threading.Thread(target=seed, args=(d,)) for d in others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for database in others:
        database.dispose()
    assert len(results) == 2 and sorted(r is None for r in results) == [False, True], results
    repo = KbRepository(db)
    assert repo.count() == 2 and len(repo.versions()) == 1
    assert AppStateRepository(db).get(STATE_KEY)["stack"] == [repo.versions()[0].id]
    assert len(repo.revisions("a")) == 1


@pytest.mark.all_backends
def test_replica_processes_seed_an_empty_database_once(empty_db_url: str, tmp_path: Path) -> None:
    Database(empty_db_url).migrate()
    commands = [[sys.executable, "-c", SEED, empty_db_url, str(SHIPPED_KB), str(tmp_path / f"i{n}")] for n in range(3)]
    starters = [subprocess.Popen(c, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for c in commands]  # fmt: skip
    outputs = [proc.communicate(timeout=300)[0] for proc in starters]
    assert [proc.returncode for proc in starters] == [0] * 3, "\n---\n".join(outputs)
    assert sorted(out.strip().splitlines()[-1] for out in outputs) == ["found", "found", "seeded"], outputs
    db = Database(empty_db_url)
    try:
        kb = KnowledgeBase(db, RagConfig(kb_dir=SHIPPED_KB, index_dir=tmp_path / "index"))
        assert len(kb.repo.versions()) == 1
        assert kb.working_entries() == kb.published_entries() == load_kb(SHIPPED_KB)
        assert [j["action"] for j in kb.journal()] == ["import"]
    finally:
        db.dispose()
