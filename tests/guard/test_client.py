"""Client address: X-Forwarded-For is believed only from a configured trusted proxy."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.datastructures import Headers

from guard.client import client_address


def request(peer: str | None, forwarded: str | None = None) -> SimpleNamespace:
    headers = Headers({"x-forwarded-for": forwarded} if forwarded else {})
    return SimpleNamespace(client=SimpleNamespace(host=peer) if peer else None, headers=headers)


def test_forwarded_header_is_ignored_without_trusted_proxies() -> None:
    assert client_address(request("127.0.0.1", "203.0.113.9")) == "127.0.0.1"
    assert client_address(request("198.51.100.7", "203.0.113.9"), ["127.0.0.1"]) == "198.51.100.7"


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("1.2.3.4, 203.0.113.9", "203.0.113.9"),  # the left part is whatever the client claimed
        ("203.0.113.9, 10.0.0.5", "203.0.113.9"),  # 10.0.0.5 is another trusted hop
        ("not-an-ip", "127.0.0.1"),
        (None, "127.0.0.1"),
    ],
)
def test_trusted_proxy_gives_the_rightmost_untrusted_hop(forwarded: str | None, client: str) -> None:
    assert client_address(request("127.0.0.1", forwarded), ["127.0.0.1", "10.0.0.0/8"]) == client


def test_missing_request_or_peer_is_unknown() -> None:
    assert client_address(None) == "unknown"
    assert client_address(request(None, "203.0.113.9"), ["127.0.0.1"]) == "unknown"


def test_trusted_proxies_setting_is_comma_separated_and_validated(monkeypatch) -> None:
    from pydantic import ValidationError

    from settings import get_settings

    assert get_settings().trusted_proxies == []
    monkeypatch.setenv("MOBILIA_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")
    assert get_settings().trusted_proxies == ["127.0.0.1", "10.0.0.0/8"]
    monkeypatch.setenv("MOBILIA_TRUSTED_PROXIES", "10.0.0.0/8,proxy.example")
    with pytest.raises(ValidationError):
        get_settings()
