"""Ticket rules without I/O: priorities, statuses, SLA deadlines and allowed transitions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

from storage.models import utcnow


class _CaseInsensitive(StrEnum):
    """StrEnum that also accepts its values in lower case (``Priority("high")``)."""

    @classmethod
    def _missing_(cls, value: object) -> _CaseInsensitive | None:
        if isinstance(value, str):
            return cls.__members__.get(value.strip().upper())
        return None


class Priority(_CaseInsensitive):
    """How fast a ticket must be handled; it sets the SLA deadline."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    URGENT = "URGENT"

    @property
    def rank(self) -> int:
        """Return 0 (LOW) to 3 (URGENT), to compare priorities."""
        return list(Priority).index(self)


class TicketStatus(_CaseInsensitive):
    """Where a ticket stands in its life cycle."""

    OPEN = "OPEN"
    IN_PROGRESS = "IN_PROGRESS"
    RESOLVED = "RESOLVED"
    CLOSED = "CLOSED"


SLA_HOURS: Mapping[Priority, int] = MappingProxyType(
    {Priority.URGENT: 1, Priority.HIGH: 4, Priority.MEDIUM: 24, Priority.LOW: 48}
)

# RESOLVED -> IN_PROGRESS is the "reopen" path; CLOSED is final.
ALLOWED_TRANSITIONS: Mapping[TicketStatus, frozenset[TicketStatus]] = MappingProxyType(
    {
        TicketStatus.OPEN: frozenset(
            {TicketStatus.IN_PROGRESS, TicketStatus.RESOLVED, TicketStatus.CLOSED}
        ),
        TicketStatus.IN_PROGRESS: frozenset(
            {TicketStatus.OPEN, TicketStatus.RESOLVED, TicketStatus.CLOSED}
        ),
        TicketStatus.RESOLVED: frozenset({TicketStatus.IN_PROGRESS, TicketStatus.CLOSED}),
        TicketStatus.CLOSED: frozenset(),
    }
)

# French labels for the agent UI.
PRIORITY_LABELS: Mapping[Priority, str] = MappingProxyType(
    {
        Priority.LOW: "Basse",
        Priority.MEDIUM: "Moyenne",
        Priority.HIGH: "Haute",
        Priority.URGENT: "Urgente",
    }
)
STATUS_LABELS: Mapping[TicketStatus, str] = MappingProxyType(
    {
        TicketStatus.OPEN: "Ouvert",
        TicketStatus.IN_PROGRESS: "En cours",
        TicketStatus.RESOLVED: "Résolu",
        TicketStatus.CLOSED: "Fermé",
    }
)

FINISHED_STATUSES = frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED})


class InvalidTransition(ValueError):
    """Raised when a status change is not allowed; the message is shown to agents."""

    def __init__(self, current: TicketStatus | str, target: TicketStatus | str) -> None:
        self.current = TicketStatus(current)
        self.target = TicketStatus(target)
        super().__init__(f"Transition impossible : {self.current} → {self.target}.")


class HasSla(Protocol):
    """Anything with a status and an SLA deadline, e.g. a ``storage.models.Ticket``."""

    status: str
    sla_due_at: datetime


def sla_due(created_at: datetime, priority: Priority | str) -> datetime:
    """Return the deadline of a ticket opened at ``created_at`` with ``priority``."""
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    return created_at + timedelta(hours=SLA_HOURS[Priority(priority)])


def is_breached(ticket: HasSla, now: datetime | None = None) -> bool:
    """Tell whether an unfinished ticket is past its SLA deadline."""
    if TicketStatus(ticket.status) in FINISHED_STATUSES:
        return False
    return (now or utcnow()) > ticket.sla_due_at


def can_transition(current: TicketStatus | str, target: TicketStatus | str) -> bool:
    """Tell whether a ticket may go from ``current`` to ``target``."""
    return TicketStatus(target) in ALLOWED_TRANSITIONS[TicketStatus(current)]


def check_transition(current: TicketStatus | str, target: TicketStatus | str) -> TicketStatus:
    """Return ``target`` as a TicketStatus, or raise InvalidTransition."""
    if not can_transition(current, target):
        raise InvalidTransition(current, target)
    return TicketStatus(target)


_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def strip_control_chars(text: str | None) -> str:
    """Text as stored: control characters removed (PostgreSQL rejects NUL), newlines and tabs kept."""
    return _CONTROL_CHARS.sub("", text or "")
