"""`python app.py` refuses to start on a database server without MOBILIA_SECRET_KEY (issue 12, finding 5)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import SecretStr

from api.config import MissingSecretKey, app_secret_key
from settings import ROOT, get_settings

POSTGRES = "postgresql+psycopg://mobilia:pw@127.0.0.1:9/mobiliachat"  # nothing listens: it must not get that far
COMMAND = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'


def run_app(cwd, **env: str) -> subprocess.CompletedProcess:
    """`python app.py` from an empty folder (no .env there) with only ``env`` deciding the secret."""
    environment = {k: v for k, v in os.environ.items() if k not in ("MOBILIA_SECRET_KEY", "MOBILIA_DATABASE_URL")}
    environment.update(env, MOBILIA_PORT="7811", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, str(ROOT / "app.py")], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_app_refuses_to_start_on_postgresql_without_a_secret(tmp_path) -> None:
    result = run_app(tmp_path, DATABASE_URL=POSTGRES)
    assert result.returncode != 0
    assert "MOBILIA_SECRET_KEY est obligatoire" in result.stderr and "is required" in result.stderr
    assert COMMAND in result.stderr
    assert "Traceback" not in result.stderr  # a clear message, not a crash


def test_app_refuses_a_short_secret(tmp_path) -> None:
    result = run_app(tmp_path, DATABASE_URL=POSTGRES, MOBILIA_SECRET_KEY="changeme")
    assert result.returncode != 0 and "trop court" in result.stderr and "Traceback" not in result.stderr


def test_secret_is_the_configured_one_or_the_local_file_for_sqlite_only(tmp_path) -> None:
    secret_file = tmp_path / "secret_key"
    configured = "x" * 48
    assert app_secret_key(get_settings(database_url=POSTGRES, secret_key=SecretStr(configured)), secret_file) == configured
    with pytest.raises(MissingSecretKey):
        app_secret_key(get_settings(database_url=POSTGRES, secret_key=SecretStr("  ")), secret_file)
    assert not secret_file.exists()
    local = app_secret_key(get_settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}"), secret_file)
    assert len(local) >= 40 and secret_file.read_text().strip() == local


def test_a_database_server_gets_a_pool_as_large_as_the_threads_using_it() -> None:
    """SQLAlchemy's default pool (5) under the API's 8 worker threads opened a PostgreSQL connection per burst."""
    from services import database_options

    url = "postgresql+psycopg://app:pw@db.example:5432/mobilia"
    assert database_options(get_settings(database_url=url, api={"worker_threads": 8})) == {"pool_size": 12}
    assert database_options(get_settings(database_url=url, database_pool_size=30)) == {"pool_size": 30}
    assert database_options(get_settings(database_url="sqlite:///x.db")) == {}
