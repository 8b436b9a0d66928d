"""`python -m rag` in a subprocess: ingest, ask --json, ask --batch and argument errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from settings import ROOT, RagConfig
from tests.conftest import EMBEDDING_MODEL

pytestmark = pytest.mark.slow

CONTRACT = ("question", "answer", "sources", "intent", "confidence", "needs_escalation", "links", "latency_ms")


def run_rag(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MOBILIA_RAG__EMBEDDING_MODEL": EMBEDDING_MODEL, "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [sys.executable, "-m", "rag", *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_ingest_builds_then_is_up_to_date(mini_kb: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    first = run_rag("ingest", "--kb-dir", mini_kb, "--index-dir", index_dir)
    assert first.returncode == 0, first.stderr
    assert " built: 5 entries" in first.stdout
    second = run_rag("ingest", "--kb-dir", mini_kb, "--index-dir", index_dir)
    assert second.returncode == 0, second.stderr
    assert " up to date: 5 entries" in second.stdout
    assert (index_dir / "CURRENT").exists()


def test_ask_warns_when_the_index_was_built_from_another_kb(mini_kb: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    assert run_rag("ingest", "--kb-dir", mini_kb, "--index-dir", index_dir).returncode == 0
    ask = ("ask", "Où trouver ma facture ?", "--kb-dir", mini_kb, "--index-dir", index_dir)
    fresh = run_rag(*ask)
    assert fresh.returncode == 0 and "warning" not in fresh.stderr and "Mes factures" in fresh.stdout
    faq = mini_kb / "faq" / "mini.json"
    faq.write_text(faq.read_text(encoding="utf-8").replace("menu Mes factures", "rubrique Factures"), encoding="utf-8")
    stale = run_rag(*ask)  # answered from the index as it is (the app may own it), with a warning
    assert stale.returncode == 0 and "Mes factures" in stale.stdout
    assert "was not built from the knowledge base" in stale.stderr and "python -m rag ingest" in stale.stderr
    assert run_rag("ingest", "--kb-dir", mini_kb, "--index-dir", index_dir).returncode == 0
    rebuilt = run_rag(*ask)
    assert "warning" not in rebuilt.stderr and "rubrique Factures" in rebuilt.stdout


def test_ingest_reports_a_broken_kb_file(mini_kb: Path, tmp_path: Path) -> None:
    (mini_kb / "bad.json").write_text("{", encoding="utf-8")
    result = run_rag("ingest", "--kb-dir", mini_kb, "--index-dir", tmp_path / "index")
    assert result.returncode == 2
    assert "bad.json" in result.stderr and "JSON invalide" in result.stderr


def test_ask_json_contract(shipped_config: RagConfig) -> None:
    question = "Comment obtenir mon code RIO ?"
    result = run_rag("ask", question, "--json", "--index-dir", shipped_config.index_dir)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert tuple(data)[: len(CONTRACT)] == CONTRACT
    assert data["question"] == question and "3179" in data["answer"]
    assert data["sources"][0]["id"] == "res-007"
    assert all(s.keys() == {"id", "title", "score", "label", "url", "used"} for s in data["sources"])
    assert data["intent"] == "résiliation" and 0 <= data["confidence"] <= 1
    assert data["needs_escalation"] is False and data["latency_ms"] > 0
    assert all({"label", "url"} <= link.keys() for link in data["links"])


def test_ask_batch_answers_valid_lines_and_reports_bad_ones(shipped_config: RagConfig, tmp_path: Path) -> None:
    batch = tmp_path / "questions.jsonl"
    batch.write_text(
        "\n".join(
            [
                json.dumps({"question": "Comment télécharger ma facture ?"}, ensure_ascii=False),
                "pas du json",
                "",
                json.dumps({"question": "Je veux parler à un conseiller"}, ensure_ascii=False),
                json.dumps({"question": "  "}),
            ]
        ),
        encoding="utf-8",
    )
    result = run_rag("ask", "--batch", batch, "--index-dir", shipped_config.index_dir)
    assert result.returncode == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["question"] for r in records] == ["Comment télécharger ma facture ?", "Je veux parler à un conseiller"]
    assert all(set(CONTRACT) <= r.keys() for r in records)
    assert records[0]["sources"][0]["id"] == "fac-001" and records[1]["needs_escalation"] is True
    assert "line 2 skipped" in result.stderr and "line 5 skipped" in result.stderr


def test_ask_without_question_or_batch_exits_2(tmp_path: Path) -> None:
    result = run_rag("ask", "--index-dir", tmp_path)
    assert result.returncode == 2
    assert "give either a question or --batch FILE" in result.stderr
