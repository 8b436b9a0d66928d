"""One training (or evaluation) run at a time across replicas, followed and cancelled from any of them.

The replica that starts a run holds the lease ``run.<kind>`` while its subprocess lives (renewed
by a watcher thread) and records the run in ``app_state`` (``runs.<kind>``: folder, owner,
state). The run's files are in the shared ``runs_dir``, so any replica reads its progress and
log; a cancel asked on another replica is written to the database and carried out by the owner.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from cluster.leases import Lease, LeaseService
from storage import AppStateRepository

log = logging.getLogger(__name__)
STATE_PREFIX = "runs."


class RunCoordinator:
    """Lease and shared state of one kind of run ('training' or 'evaluation')."""

    def __init__(self, kind: str, leases: LeaseService, state: AppStateRepository, owner: str, *,
                 ttl: float = 10.0, renew_every: float = 3.0) -> None:  # fmt: skip
        self.kind = kind
        self.leases = leases
        self.state = state
        self.owner = owner
        self.ttl = ttl
        self.renew_every = renew_every

    @property
    def lease_name(self) -> str:
        return f"run.{self.kind}"

    def claim(self) -> Lease | None:
        """The lease for a new run, or None while another replica (or this one) runs one."""
        return self.leases.acquire(self.lease_name, self.owner, self.ttl)

    def record(self, **values: Any) -> None:
        """Write the run's shared state (merged with what is there)."""
        current = self.current() or {}
        self.state.set(STATE_PREFIX + self.kind, {**current, **values, "updated_at": time.time()})

    def current(self) -> dict | None:
        """The last run of this kind as recorded: {run, path, owner, state, cancel, ...}."""
        value = self.state.get(STATE_PREFIX + self.kind)
        return value if isinstance(value, dict) else None

    def running_elsewhere(self) -> bool:
        """True while another replica holds the run lease."""
        holder = self.leases.holder(self.lease_name)
        return holder is not None and holder != self.owner

    def request_cancel(self, run: str) -> None:
        """Ask the owner replica to cancel ``run`` (it checks every renewal)."""
        self.record(cancel=run)

    def cancel_requested(self, run: str) -> bool:
        current = self.current() or {}
        return current.get("cancel") == run

    def renew(self, lease: Lease) -> Lease | None:
        """Keep the lease while the run lives; re-acquire it after a Redis outage (None: someone else has it)."""
        if self.leases.renew(lease):
            return lease
        again = self.claim()
        if again is None:
            log.warning("%s run lease could not be renewed", self.kind)
        return again

    def release(self, lease: Lease | None) -> None:
        if lease is not None:
            self.leases.release(lease)
