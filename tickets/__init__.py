"""Ticketing: priorities, SLA and status rules (domain) and the ticket service."""

from tickets.domain import (
    ALLOWED_TRANSITIONS,
    PRIORITY_LABELS,
    SLA_HOURS,
    STATUS_LABELS,
    InvalidTransition,
    Priority,
    TicketStatus,
    can_transition,
    check_transition,
    is_breached,
    sla_due,
)
from tickets.queue import UNASSIGNED, ConversationContact, QueueFilters, QueuePage, QueueRow, TicketDetail
from tickets.service import RatingError, TicketService

__all__ = [
    "ALLOWED_TRANSITIONS",
    "PRIORITY_LABELS",
    "SLA_HOURS",
    "STATUS_LABELS",
    "UNASSIGNED",
    "ConversationContact",
    "InvalidTransition",
    "Priority",
    "QueueFilters",
    "QueuePage",
    "QueueRow",
    "RatingError",
    "TicketDetail",
    "TicketService",
    "TicketStatus",
    "can_transition",
    "check_transition",
    "is_breached",
    "sla_due",
]
