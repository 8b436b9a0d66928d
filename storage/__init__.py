"""Persistence layer of MobiliaChat: SQLAlchemy models, database handle, repositories."""

from storage.db import Database
from storage.models import (
    AppState,
    Base,
    ContactToken,
    Conversation,
    Customer,
    Feedback,
    MastodonPost,
    Message,
    StaffUser,
    Ticket,
    TicketEvent,
    WebhookDelivery,
    new_conversation_id,
    utcnow,
)
from storage.repositories import (
    AppStateRepository,
    ConversationRepository,
    CustomerRepository,
    FeedbackRepository,
    MessageRepository,
    NotFoundError,
)

__all__ = [
    "AppState",
    "AppStateRepository",
    "Base",
    "ContactToken",
    "Conversation",
    "ConversationRepository",
    "Customer",
    "CustomerRepository",
    "Database",
    "Feedback",
    "FeedbackRepository",
    "MastodonPost",
    "Message",
    "MessageRepository",
    "NotFoundError",
    "StaffUser",
    "Ticket",
    "TicketEvent",
    "WebhookDelivery",
    "new_conversation_id",
    "utcnow",
]
