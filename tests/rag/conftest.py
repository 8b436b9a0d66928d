"""Fixtures of the rag tests: the mini KB in a temp folder and a config that indexes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from settings import RagConfig
from tests.conftest import EMBEDDING_MODEL, write_mini_kb


@pytest.fixture
def mini_kb(tmp_path: Path) -> Path:
    """The three-file mini KB, written fresh for each test."""
    return write_mini_kb(tmp_path / "kb")


@pytest.fixture
def mini_config(tmp_path: Path, mini_kb: Path) -> RagConfig:
    """RagConfig over the mini KB with an empty index folder."""
    return RagConfig(kb_dir=mini_kb, index_dir=tmp_path / "index", embedding_model=EMBEDDING_MODEL)
