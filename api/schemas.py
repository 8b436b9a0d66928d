"""Request and response models of `/api/v1`, with field limits (they also make the OpenAPI schema)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

ConversationId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="Conversation id (32 hex characters).")]
Priority = Literal["LOW", "MEDIUM", "HIGH", "URGENT"]
Status = Literal["OPEN", "IN_PROGRESS", "RESOLVED", "CLOSED"]


class Strict(BaseModel):
    """Unknown fields are refused so a typo is a clear 422, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class UserInfo(Strict):
    full_name: str = Field(..., max_length=100, description="Nom complet.")
    phone: str = Field(..., max_length=32, description="Mobile français (06/07 ou +33).")
    email: str | None = Field(None, max_length=320)


class ChatMessageBase(Strict):
    conversation_id: ConversationId | None = Field(None, description="Absent for the first message.")
    context_token: str | None = Field(None, max_length=128, description="Token of a Mastodon reply link.")
    user_info: UserInfo | None = Field(None, description="Required to open a new conversation.")


def chat_request_model(max_chars: int) -> type[ChatMessageBase]:
    """The chat request model with the configured longest message."""

    class ChatMessageRequest(ChatMessageBase):
        message: str = Field(..., min_length=1, max_length=max_chars, description="Customer message.")

    return ChatMessageRequest


class SourceOut(BaseModel):
    id: str
    title: str
    score: float


class LinkOut(BaseModel):
    label: str
    url: str


class ChatMessageResponse(BaseModel):
    conversation_id: str
    conversation_key: str | None = Field(
        None, description="Access key of a NEW conversation (returned once): send it as X-Conversation-Key."
    )
    message: str = Field(description="The stored customer message.")
    response: str | None = Field(description="The assistant's answer (None while an agent holds the chat).")
    needs_escalation: bool
    ticket_id: int | None = Field(None, description="The conversation's ticket, opened by this message or joined.")
    notice: str | None = None
    welcome: str | None = Field(
        None, description="First message with a context_token: the acknowledgement of the Mastodon post joined."
    )
    sources: list[SourceOut]
    suggested_links: list[LinkOut]


class MessageOut(BaseModel):
    id: int
    role: str
    content: str
    created_at: datetime


class ConversationMessages(BaseModel):
    conversation_id: str
    status: str
    messages: list[MessageOut]


class LoginRequest(Strict):
    username: str = Field(..., min_length=1, max_length=64)
    password: str = Field(..., min_length=1, max_length=256)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    role: str


class TicketEventOut(BaseModel):
    kind: str
    actor: str
    body: str | None
    created_at: datetime


class ContactOut(BaseModel):
    """What the ticket's conversation was opened with; ``name_conflict`` when its phone came with another name."""

    full_name: str
    phone: str
    email: str | None
    name_conflict: bool
    other_names: list[str]


class TicketOut(BaseModel):
    id: int
    conversation_id: str | None
    customer_id: int | None
    category: str
    priority: str
    status: str
    assignee: str | None
    summary: str
    created_at: datetime
    updated_at: datetime
    sla_due_at: datetime
    resolved_at: datetime | None
    events: list[TicketEventOut] = []
    contact: ContactOut | None = Field(None, description="Contact given in the conversation's form (one ticket read).")


class TicketRowOut(BaseModel):
    id: int
    status: str
    priority: str
    category: str
    assignee: str | None
    summary: str
    customer_name: str | None
    created_at: datetime
    sla_due_at: datetime
    breached: bool


class TicketPage(BaseModel):
    tickets: list[TicketRowOut]
    total: int
    page: int
    page_size: int
    pages: int


class TicketCreate(Strict):
    conversation_id: ConversationId | None = None
    category: str = Field(..., min_length=1, max_length=64, pattern=r"^[\w\- ]+$")
    priority: Priority = "MEDIUM"
    summary: str = Field(..., min_length=1, max_length=2000)


class TicketUpdate(Strict):
    status: Status | None = None
    assignee: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")
    unassign: bool = False
    note: str | None = Field(None, min_length=1, max_length=4000)


class AnalyticsOut(BaseModel):
    start: date
    end: date
    kpis: dict[str, float | int | None]
    previous: dict[str, float | int | None]
    deltas: dict[str, float | None]
    conversations_daily: list[dict]


class SaveContextRequest(Strict):
    handle: str = Field(..., min_length=2, max_length=255, pattern=r"^@?[\w.\-]+(@[\w.\-]+)?$")
    post_url: str = Field(..., min_length=8, max_length=1024, pattern=r"^https?://\S+$")
    status_id: str | None = Field(None, max_length=64, pattern=r"^[\w\-]+$")
    complaint: str = Field(..., min_length=1, max_length=5000)
    urgency: Literal["LOW", "MEDIUM", "HIGH"] | None = None


class SaveContextResponse(BaseModel):
    token: str
    link: str
    expires_in_hours: float


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]
    redis: Literal["ok", "unavailable", "disabled"] = "disabled"  # disabled: one process, no Redis configured


class ModelStatusOut(BaseModel):
    """Public model status: whether answers are served, and how (no names, paths or errors)."""

    status: Literal["ready", "loading", "unavailable"]
    answer_mode: str


class StaffModelStatusOut(ModelStatusOut):
    """Model status for authenticated staff (bearer token): the same plus names, adapter paths and errors."""

    ready: bool
    error: str | None
    embedding_model: str
    details: dict = {}


class ErrorOut(BaseModel):
    detail: str | list | dict
