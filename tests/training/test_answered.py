"""`python -m training.answered`: which questions become phrasings of which entry, or out-of-scope examples."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import EMBEDDING_MODEL, write_mini_kb
from training.answered import main


def _write(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8")
    return path


def test_only_questions_an_entry_answers_are_labelled(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MOBILIA_RAG__KB_DIR", str(write_mini_kb(tmp_path / "kb")))
    monkeypatch.setenv("MOBILIA_RAG__EMBEDDING_MODEL", EMBEDDING_MODEL)
    monkeypatch.setenv("MOBILIA_RAG__INDEX_DIR", str(tmp_path / "served-index"))
    base = {"category": "facturation", "expect_escalation": False, "out_of_scope": False}
    items = [
        {**base, "id": "t-1", "question": "je trouve pas ma facture en pdf, elle est ou ?", "expected_facts": ["Mes factures"]},
        {**base, "id": "t-2", "question": "Plus aucune barre de réseau sur mon téléphone", "expected_facts": ["mode avion"]},
        {**base, "id": "t-3", "question": "Je veux un conseiller tout de suite", "expected_facts": [], "expect_escalation": True},
        {**base, "id": "t-4", "question": "Une recette de crêpes sans oeufs ?", "expected_facts": [], "out_of_scope": True},
        {**base, "id": "t-5", "question": "Ma facture en PDF, où ?", "expected_facts": ["999 Go"]},  # no entry says it
        {**base, "id": "t-6", "question": "je trouve pas ma facture en pdf, elle est ou ?", "expected_facts": ["Mes factures"]},
    ]
    out = tmp_path / "answered.jsonl"
    assert main(["--sets", str(_write(tmp_path / "chat_dev.jsonl", items)), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["question"], r.get("entry"), r.get("out_of_scope")) for r in rows] == [
        (items[0]["question"], "m-1", None), (items[1]["question"], "m-2", None), (items[3]["question"], None, True)]
    assert json.loads(capsys.readouterr().out)["sets"]["chat_dev.jsonl"] == {"questions": 6, "labelled": 3}
    assert not (tmp_path / "served-index").exists()  # answered from an index of its own, never the served one

    # The held-out set measures generalisation: it is refused, and the file written before is kept.
    assert main(["--sets", str(_write(tmp_path / "chat_holdout.jsonl", items)), "--out", str(out)]) == 2
    assert "never used" in capsys.readouterr().err
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3
