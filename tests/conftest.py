"""Shared fixtures: temp databases, the embedding model and an index of the shipped KB, built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from settings import ROOT, RagConfig

SHIPPED_KB = ROOT / "datasets" / "raw"
EVAL_DIR = ROOT / "datasets" / "eval"
# Tiny models are constants overridable by env (no download in the default path).
EMBEDDING_MODEL = os.environ.get("MOBILIA_TEST_EMBEDDING_MODEL", "packaged")


@pytest.fixture(scope="session")
def embedder():
    """One loaded embedding model for the whole session."""
    from rag.embeddings import Embedder

    return Embedder(EMBEDDING_MODEL)


@pytest.fixture(scope="session")
def shipped_config(tmp_path_factory, embedder) -> RagConfig:
    """RagConfig whose index_dir holds a build of the shipped KB (built once per session)."""
    from rag.index import build_index

    config = RagConfig(kb_dir=SHIPPED_KB, index_dir=tmp_path_factory.mktemp("index"), embedding_model=EMBEDDING_MODEL)
    build_index(config, embedder)
    return config


@pytest.fixture(scope="session")
def engine(shipped_config, embedder):
    """Answer engine over the shipped KB."""
    from rag.answer import AnswerEngine

    return AnswerEngine(shipped_config, embedder)


@pytest.fixture
def db(tmp_path: Path):
    """A migrated SQLite database in a temp file."""
    from storage import Database

    database = Database(f"sqlite:///{tmp_path / 'test.db'}")
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def chat_service(db, engine):
    """ChatService over a fresh database and the shipped KB."""
    from rag.chat import ChatService
    from tickets import TicketService

    return ChatService(db, engine, TicketService(db))


def write_mini_kb(folder: Path) -> Path:
    """A three-file KB (FAQ JSON, Markdown, CSV) for fast index tests."""
    import json

    (folder / "faq").mkdir(parents=True, exist_ok=True)
    (folder / "faq" / "mini.json").write_text(
        json.dumps(
            [
                {"id": "m-1", "category": "facturation", "question": "Où trouver ma facture ?",
                 "variants": ["facture pdf"], "answer": "Dans l'Espace Abonné, menu Mes factures.",
                 "tags": ["facture"], "links": []},
                {"id": "m-2", "category": "technique", "question": "Je n'ai plus de réseau",
                 "variants": ["pas de signal"], "answer": "Désactivez le mode avion puis redémarrez.",
                 "tags": ["réseau"], "links": []},
            ],
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    (folder / "proc.md").write_text(
        "---\ncategory: assistance\n---\n# Procédure test\n\n## Délais\nUn conseiller répond sous 4 h.\n\n"
        "## Urgence\nLes urgences sont traitées en 1 h.\n",
        encoding="utf-8",
    )
    (folder / "conv.csv").write_text(
        "id,category,question,answer\n1,forfait,Combien de data ?,Le forfait inclut 300 Go.\n", encoding="utf-8"
    )
    return folder
