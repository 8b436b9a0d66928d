"""Replicas starting together on an empty database migrate it once (migration lock), and all succeed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from storage import Database

ROOT = Path(__file__).resolve().parents[2]
MIGRATE = "import sys; from storage import Database; Database(sys.argv[1]).migrate(); print('migrated')"


@pytest.mark.all_backends
def test_replicas_migrating_an_empty_database_at_once_all_succeed(empty_db_url: str) -> None:
    starters = [
        subprocess.Popen([sys.executable, "-c", MIGRATE, empty_db_url], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for _ in range(4)
    ]
    outputs = [proc.communicate(timeout=300)[0] for proc in starters]
    assert [proc.returncode for proc in starters] == [0] * 4, "\n---\n".join(outputs)
    db = Database(empty_db_url)
    try:
        with db.engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert len(versions) == 1
        from tests.storage.test_db import HEAD

        assert versions == [HEAD]
    finally:
        db.dispose()
