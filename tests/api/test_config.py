"""API settings: the generated secret key file, env overrides, validation, no secret in reprs."""

from __future__ import annotations

import stat

import pytest
from pydantic import SecretStr, ValidationError

from api.config import ApiSettings, load_secret_key


def test_secret_key_is_generated_once_with_private_mode(tmp_path) -> None:
    path = tmp_path / "data" / "secret_key"
    first = load_secret_key(None, path)
    assert len(first) >= 40 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret_key(None, path) == first
    assert load_secret_key(SecretStr("configured-secret"), path) == "configured-secret"


def test_env_overrides_and_secrets_are_hidden(monkeypatch) -> None:
    from settings import get_settings

    monkeypatch.setenv("MOBILIA_SECRET_KEY", "s3cr3t-value-not-logged")
    monkeypatch.setenv("MOBILIA_API__RATE_LIMIT_IP", "5/second")
    monkeypatch.setenv("MOBILIA_API__WEBHOOK_URLS", '["http://127.0.0.1:9000/hook"]')
    monkeypatch.setenv("MOBILIA_API__WEBHOOK_SECRET", "hook-secret-value")
    settings = get_settings()
    assert settings.api.rate_limit_ip == "5/second"
    assert settings.api.webhook_urls == ["http://127.0.0.1:9000/hook"]
    text = repr(settings) + str(settings.model_dump())
    assert "s3cr3t-value-not-logged" not in text and "hook-secret-value" not in text


@pytest.mark.parametrize("bad", [{"rate_limit_ip": "lots"}, {"webhook_urls": ["ftp://x"]}, {"token_ttl_minutes": 0}])
def test_invalid_api_settings_are_refused(bad) -> None:
    with pytest.raises(ValidationError):
        ApiSettings(**bad)
