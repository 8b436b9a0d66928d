"""KB in the database: shipped seed round trip, same fingerprint as the files, editing rules, history, rollback."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.index import fingerprint
from rag.kb import KbError, KnowledgeBase
from rag.sources import load_kb
from settings import RagConfig
from tests.conftest import SHIPPED_KB


@pytest.fixture
def kb(db, tmp_path: Path) -> KnowledgeBase:
    base = KnowledgeBase(db, RagConfig(kb_dir=SHIPPED_KB, index_dir=tmp_path / "index"))
    assert base.ensure_seeded()
    return base


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.all_backends
def test_shipped_kb_round_trip(kb: KnowledgeBase, db, tmp_path: Path) -> None:
    shipped = load_kb(SHIPPED_KB)
    assert kb.published_entries() == shipped == kb.working_entries()
    assert fingerprint(kb.config, kb.published_entries()) == fingerprint(kb.config)  # same index as the files
    kb.export_dir(tmp_path / "first")
    assert load_kb(tmp_path / "first") == shipped
    assert _files(tmp_path / "first") == _files(SHIPPED_KB)  # the seed's own layout and bytes
    kb.import_dir(tmp_path / "first", author="admin")
    kb.export_dir(tmp_path / "second")
    assert _files(tmp_path / "second") == _files(tmp_path / "first")
    assert not kb.ensure_seeded()  # not empty any more: the seed is not imported twice


def test_edited_entries_survive_export_and_import(kb: KnowledgeBase, tmp_path: Path) -> None:
    kb.add_phrasing("fac-001", "ma facture est où", author="t", role="trainer")
    kb.add_phrasing("proc-objectifs-de-service#liens-utiles", "adresses utiles", author="t", role="trainer")
    conv = next(e.id for e in kb.working_entries() if e.kind == "conversation")
    kb.add_phrasing(conv, "une autre façon de le dire", author="t", role="trainer")
    kb.save_entry({"category": "forfait", "questions": ["Puis-je garder mon forfait à l'étranger ?"],
                   "answer": "Oui, dans les pays inclus."}, author="t", role="trainer")  # fmt: skip
    working = kb.working_entries()
    kb.export_dir(tmp_path / "out", working=True)
    assert load_kb(tmp_path / "out") == working


def test_validation_messages_are_french(kb: KnowledgeBase) -> None:
    with pytest.raises(KbError, match="La réponse est vide"):
        kb.save_entry({"id": "fac-001", "answer": " "}, author="t", role="trainer")
    with pytest.raises(KbError, match="déjà utilisée par l'entrée fac-001"):
        kb.add_phrasing("fac-002", "Comment télécharger ma facture ?", author="t", role="trainer")
    with pytest.raises(KbError, match="Lien invalide"):
        kb.save_entry({"id": "fac-001", "links": ["mobile.free.fr mes factures"]}, author="t", role="trainer")
    with pytest.raises(KbError, match="numéro de téléphone"):
        kb.save_entry({"id": "fac-001", "answer": "Appelez le 06 12 34 56 78."}, author="t", role="trainer")
    with pytest.raises(KbError, match="adresse e-mail"):
        kb.save_entry({"id": "fac-001", "answer": "Écrivez à support@example.com."}, author="t", role="trainer")


def test_agents_only_propose_drafts(kb: KnowledgeBase) -> None:
    with pytest.raises(KbError, match="proposer"):
        kb.add_phrasing("fac-001", "facture introuvable", author="a", role="agent")
    kb.save_entry({"id": "prop-1", "category": "facturation", "questions": ["facture en double"],
                   "answer": "Un conseiller vérifie."}, author="a", role="agent")  # fmt: skip
    assert kb.repo.get("prop-1").status == "draft"
    assert kb.history("prop-1")[0]["action"] == "propose"
    with pytest.raises(KbError, match="formateurs"):
        kb.retire("prop-1", author="a", role="agent")
    with pytest.raises(KbError, match="rôle"):
        kb.save_entry({"id": "prop-2", "questions": ["x"], "answer": "y"}, author="e", role="evaluator")


def test_history_diff_and_restore(kb: KnowledgeBase) -> None:
    old = kb.repo.get("fac-001").answer
    kb.save_entry({"id": "fac-001", "answer": "Texte remplacé."}, author="t", role="trainer")
    history = kb.history("fac-001")
    assert [h["action"] for h in history] == ["update", "import"]
    assert "+réponse : Texte remplacé." in history[0]["diff"] and f"-réponse : {old.split('. ')[0]}" in history[0]["diff"]
    assert "+statut : brouillon" in history[0]["diff"]
    kb.restore(history[1]["id"], author="t", role="trainer")
    assert kb.repo.get("fac-001").answer == old
    kb.retire("fac-001", author="t", role="admin")
    assert "fac-001" not in {e.id for e in kb.working_entries()}
    assert "fac-001" in {e.id for e in kb.published_entries()}  # until the next publication


def test_pending_changes_of_the_next_publication(kb: KnowledgeBase) -> None:
    assert kb.pending() == {"added": [], "changed": [], "retired": [], "proposed": []}
    kb.add_phrasing("fac-001", "ma facture est où", author="t", role="trainer")
    kb.retire("fac-002", author="t", role="trainer")
    kb.save_entry({"id": "new-1", "category": "forfait", "questions": ["Forfait à l'étranger ?"],
                   "answer": "Oui, dans les pays inclus."}, author="t", role="trainer")  # fmt: skip
    kb.save_entry({"id": "prop-1", "category": "forfait", "questions": ["facture en double"],
                   "answer": "Un conseiller vérifie."}, author="a", role="agent")  # fmt: skip
    assert kb.pending() == {"added": ["new-1"], "changed": ["fac-001"], "retired": ["fac-002"], "proposed": ["prop-1"]}


def test_rollback_pointer_and_journal(kb: KnowledgeBase) -> None:
    with pytest.raises(KbError, match="aucune publication précédente"):
        kb.rollback(author="admin")
    first = kb.published_version().id
    entries = kb.working_entries()[1:]
    second = kb._publish_snapshot(entries, author="admin", note="test")
    assert kb.published_version().id == second and len(kb.published_entries()) == len(entries)
    assert kb.rollback(author="admin") == first
    assert [j["action"] for j in kb.journal()] == ["rollback", "publish", "import"]
