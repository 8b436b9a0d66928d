"""`python -m social.monitor` takes the app's monitor lease: a CLI monitor and an app replica never run two monitors.

The app side is `Services` wired as app.py wires it (its monitor runs under the `social-monitor`
lease); the CLI runs as a real second process. Without Redis the lease goes through the database
(an flock beside the SQLite file); with MOBILIA_TEST_REDIS_URL it is the Redis lease of the replicas.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.mastodon_peer import SUPPORT
from settings import ROOT, get_settings
from social.monitor import MONITOR_LEASE, SocialMonitor, main
from tests.cluster.conftest import redis_url  # noqa: F401 (the test Redis fixture)
from tests.social.conftest import our_replies, wait_for

pytestmark = pytest.mark.slow
COMPLAINT = "Toujours aucun réseau depuis hier soir, c'est inadmissible !!! 😡 #FreeMobile ({n})"
TIMINGS = {"lease_ttl_s": 2.0, "lease_renew_s": 0.3, "lease_retry_s": 0.2}


@pytest.fixture(params=["database", "redis"])
def lease_store(request) -> str | None:
    """Where the lease lives: None (the database) or the test Redis' URL (flushed)."""
    return request.getfixturevalue("redis_url") if request.param == "redis" else None


def _mastodon(peer) -> dict:
    return {"instance_url": peer.base_url, "access_token": f"{SUPPORT}_token", "reply_mode": "auto",
            "backoff_initial": 0.1, "backoff_max": 0.5, "stream_timeout": 5, "request_timeout": 5}  # fmt: skip


def _app(url: str, peer, redis: str | None):
    """The app's services as app.py builds them (only what the monitor needs)."""
    from services import Services
    from social.service import SocialService
    from storage import Database
    from tickets import TicketService

    settings = get_settings(database_url=url, redis_url=redis, mastodon=_mastodon(peer), cluster=TIMINGS)
    db = Database(url)
    tickets = TicketService(db)
    social = SocialService(settings.mastodon, db, tickets, public_url="http://chat.test")
    monitor = SocialMonitor(settings.mastodon, db, service=social)
    return Services(settings=settings, db=db, engine=None, tickets=tickets, chat=None, staff=None, social=social,
                    social_monitor=monitor)  # fmt: skip


def _cli_env(peer, redis: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBILIA_")}
    env |= {f"MOBILIA_MASTODON__{k.upper()}": str(v) for k, v in _mastodon(peer).items()}
    env |= {f"MOBILIA_CLUSTER__{k.upper()}": str(v) for k, v in TIMINGS.items()}
    if redis:
        env["MOBILIA_REDIS_URL"] = redis
    return {**env, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}


def test_cli_monitor_and_app_share_one_lease(db, peer, lease_store, tmp_path: Path, monkeypatch, capsys) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    app = _app(url, peer, lease_store)
    alice = peer.client("alice")
    posted: list[str] = []
    cli = None
    log_path = tmp_path / "cli.log"
    try:
        app.start_background()
        wait_for(lambda: app.social_monitor.running, timeout=30)

        # --once while the app's monitor runs: it does nothing (that monitor is catching up already).
        for key, value in _cli_env(peer, lease_store).items():
            if key.startswith("MOBILIA_"):
                monkeypatch.setenv(key, value)
        assert main(["--once", "--db", url]) == 0
        assert '"skipped"' in capsys.readouterr().out

        # A long-running CLI monitor waits while the app holds the lease...
        with log_path.open("wb") as log:
            cli = subprocess.Popen([sys.executable, "-m", "social.monitor", "--db", url], cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT, env=_cli_env(peer, lease_store))  # fmt: skip
        wait_for(lambda: "waiting for it" in log_path.read_text(), timeout=60)
        posted.append(str(alice.status_post(COMPLAINT.format(n=1))["id"]))
        wait_for(lambda: len(our_replies(peer, posted[0])) == 1, timeout=30)  # answered by the app's monitor
        assert "social monitor started" not in log_path.read_text()

        # ...and takes over when the app's replica stops; the app's keeper then stays out.
        app.stop_background()
        assert not app.social_monitor.running
        wait_for(lambda: "social monitor started" in log_path.read_text(), timeout=30)
        app.start_background()
        wait_for(app._monitor_lease.attempted.is_set, timeout=10)
        assert not app._monitor_lease.holding and not app.social_monitor.running
        assert app.cluster.leases.holder(MONITOR_LEASE) not in (None, app.cluster.replica)
        posted.append(str(alice.status_post(COMPLAINT.format(n=2))["id"]))
        wait_for(lambda: len(our_replies(peer, posted[1])) == 1, timeout=30)  # answered by the CLI's monitor

        # kill -9 of the CLI: the app's monitor comes back by itself.
        os.kill(cli.pid, signal.SIGKILL)
        cli.wait(30)
        wait_for(lambda: app.social_monitor.running, timeout=30)
        posted.append(str(alice.status_post(COMPLAINT.format(n=3))["id"]))
        wait_for(lambda: len(our_replies(peer, posted[2])) == 1, timeout=30)
    finally:
        if cli is not None and cli.poll() is None:
            cli.send_signal(signal.SIGTERM)
            cli.wait(30)
        app.stop_background()
        app.db.dispose()
    assert {s: len(our_replies(peer, s)) for s in posted} == dict.fromkeys(posted, 1), "never replied twice"
