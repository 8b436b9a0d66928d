"""Fixtures of the social tests: a real mastodon-mock peer on loopback and monitors bound to it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from bench.mastodon_peer import SUPPORT, MastodonPeer
from social.config import MastodonSettings
from social.monitor import SocialMonitor
from tests.conftest import free_port


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05) -> object:
    """Poll until ``predicate()`` is truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def our_replies(peer: MastodonPeer, status_id) -> list[dict]:
    """Replies of the support account to a status, as the server sees them."""
    context = peer.client("alice").status_context(status_id)
    return [s for s in context["descendants"] if s["account"]["acct"] == SUPPORT]


@pytest.fixture
def peer(tmp_path) -> Iterator[MastodonPeer]:
    """A started mastodon-mock server with a file database (restartable on the same port)."""
    server = MastodonPeer(tmp_path / "mastodon.db", port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def make_monitor(db, peer) -> Iterator[Callable[..., SocialMonitor]]:
    """Build monitors on the peer (stopped at teardown; no thread may leak)."""
    monitors: list[SocialMonitor] = []

    def factory(reply_mode: str = "auto", **overrides) -> SocialMonitor:
        settings = MastodonSettings(
            instance_url=peer.base_url,
            access_token=f"{SUPPORT}_token",
            reply_mode=reply_mode,
            backoff_initial=0.1,
            backoff_max=0.5,
            stream_timeout=5,
            request_timeout=5,
            **overrides,
        )
        monitor = SocialMonitor(settings, db, public_url="http://chat.test")
        monitors.append(monitor)
        return monitor

    yield factory
    for monitor in monitors:
        monitor.stop()
    leaked = [t.name for t in threading.enumerate() if t.name == "social-monitor"]
    assert not leaked, leaked
