"""A restartable mastodon-mock server on loopback (file-backed, fixed port), for the bench and tests.

``mastodon_mock.testing.MockServer`` binds a new port with a fresh in-memory DB on every start;
a server *restart* test needs the same URL and the same data, so this keeps both.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

SUPPORT = "mobiliasav"  # the support account the monitor logs in as
CUSTOMERS = ("alice", "bob")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MastodonPeer:
    """mastodon-mock's real FastAPI app under uvicorn; ``stop()`` then ``start()`` keeps URL and data."""

    def __init__(self, db_path: Path, *, port: int | None = None, heartbeat: float = 0.2) -> None:
        from mastodon_mock.config import DatabaseConfig, MastodonMockConfig, SeedAccount, SeedConfig, StreamingConfig

        accounts = [
            SeedAccount(username=u, display_name=u.title(), access_token=f"{u}_token") for u in (SUPPORT, *CUSTOMERS)
        ]
        self.config = MastodonMockConfig(
            database=DatabaseConfig(path=str(db_path)),
            seed=SeedConfig(accounts=accounts),
            streaming=StreamingConfig(heartbeat_seconds=heartbeat),
        )
        self.port = port or _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 15.0) -> MastodonPeer:
        """Serve on the fixed port; waits until uvicorn accepts connections."""
        import uvicorn
        from mastodon_mock.app import create_app

        config = uvicorn.Config(
            create_app(self.config), host="127.0.0.1", port=self.port, log_level="critical", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="mastodon-peer", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("mastodon-mock did not start")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down (open streams are cut) and wait for its thread."""
        if self._server is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        self._server, self._thread = None, None

    def client(self, username: str = "alice") -> Any:
        """A Mastodon.py client logged in as a seeded account."""
        from mastodon import Mastodon

        return Mastodon(access_token=f"{username}_token", api_base_url=self.base_url)

    def __enter__(self) -> MastodonPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
