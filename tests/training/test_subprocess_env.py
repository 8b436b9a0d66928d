"""Training and evaluation subprocesses never inherit the server's secrets (keys, tokens, passwords)."""

from __future__ import annotations

import sys

from training.runner import child_env, is_secret, spawn

SECRETS = {
    "MOBILIA_SECRET_KEY": "s1", "MOBILIA_RAG__LLM__API_KEY": "s2", "MOBILIA_MASTODON__ACCESS_TOKEN": "s3",
    "MOBILIA_API__WEBHOOK_SECRET": "s4", "MOBILIA_API__INTERNAL_TOKEN": "s5", "OPENAI_API_KEY": "s6",
    "PGPASSWORD": "s7", "MOBILIA_RAG__LLM__ENDPOINTS": '[{"name": "x", "base_url": "http://x", "api_key": "s8"}]',
}  # fmt: skip
KEPT = {"MOBILIA_RAG__LLM__MAX_NEW_TOKENS": "64", "MOBILIA_RAG__INDEX_DIR": "data/index", "HF_TOKEN": "hub",
        "DATABASE_URL": "sqlite:///data/x.db"}  # fmt: skip


def test_secrets_are_scrubbed_and_settings_kept(monkeypatch):
    for name, value in {**SECRETS, **KEPT}.items():
        monkeypatch.setenv(name, value)
    env = child_env()
    assert not set(SECRETS) & set(env) and all(env[k] == v for k, v in KEPT.items())
    assert child_env({"MOBILIA_RAG__LLM__API_KEY": "needed"})["MOBILIA_RAG__LLM__API_KEY"] == "needed"
    assert not is_secret("MOBILIA_MASTODON__TOKEN_TTL_HOURS") and is_secret("AWS_SECRET_ACCESS_KEY")


def test_the_spawned_process_sees_no_secret(monkeypatch, tmp_path):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    log = tmp_path / "env.log"
    code = "import os, json; print(json.dumps(dict(os.environ)))"
    proc = spawn([sys.executable, "-c", code], log)
    assert proc.wait(timeout=60) == 0
    seen = log.read_text(encoding="utf-8")
    assert not any(f'"{value}"' in seen for value in SECRETS.values() if not value.startswith("["))
    assert "MOBILIA_RAG__LLM__ENDPOINTS" not in seen and "PYTHONUNBUFFERED" in seen
