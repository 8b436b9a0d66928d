"""Staff endpoints: login (JWT), tickets (list, read, create, update), analytics, Mastodon context."""

import dataclasses
import hmac
import logging
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response

from api.schemas import (
    AnalyticsOut,
    ContactOut,
    ErrorOut,
    LoginRequest,
    Priority,
    SaveContextRequest,
    SaveContextResponse,
    Status,
    TicketCreate,
    TicketOut,
    TicketPage,
    TicketUpdate,
    TokenResponse,
)
from social.replies import chat_link
from storage.models import utcnow
from storage.repositories import NotFoundError
from tickets.domain import InvalidTransition
from tickets.queue import QueueFilters
from tickets.users import StaffPrincipal

log = logging.getLogger(__name__)
AUTH_ERRORS = {401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 422: {"model": ErrorOut}, 429: {"model": ErrorOut}}
TICKET_NOT_FOUND = "Ticket introuvable."
TicketId = Path(..., ge=1, le=2**31 - 1)


def staff_router(ctx) -> APIRouter:
    """Routes for agents, trainers and admins (bearer token from POST /auth/login)."""
    router = APIRouter()
    services = ctx.services
    tickets = services.tickets
    TicketStaff = Annotated[StaffPrincipal, Depends(ctx.staff("tickets"))]
    AnalyticsStaff = Annotated[StaffPrincipal, Depends(ctx.staff("analytics"))]

    @router.post("/auth/login", response_model=TokenResponse, tags=["auth"], responses=AUTH_ERRORS)
    def login(body: LoginRequest, request: Request):
        """Exchange staff credentials for a bearer token (JWT, HS256)."""
        ctx.limits.login(ctx.client_ip(request), body.username)  # per client and per account, shared with the UI
        principal = ctx.db(services.staff.authenticate, body.username, body.password)
        if principal is None:
            raise HTTPException(401, "Identifiant ou mot de passe incorrect.", headers={"WWW-Authenticate": "Bearer"})
        return TokenResponse(
            access_token=ctx.tokens.issue(principal), expires_in=ctx.tokens.ttl_seconds, role=principal.role
        )

    @router.get("/tickets", response_model=TicketPage, tags=["tickets"], responses=AUTH_ERRORS)
    def list_tickets(
        _staff: TicketStaff,
        status: Status | None = None,
        priority: Priority | None = None,
        category: str | None = Query(None, max_length=64),
        assignee: str | None = Query(None, max_length=64),
        breached: bool = False,
        sort: str = Query("sla", pattern="^(sla|priority|created)$"),
        descending: bool = False,
        page: int = Query(1, ge=1, le=100_000),
        page_size: int = Query(20, ge=1, le=100),
    ):
        """The agent queue: filtered, sorted and paginated in SQL."""
        filters = QueueFilters(
            status=status,
            priority=priority,
            category=category,
            assignee=assignee,
            breached=breached,
            sort=sort,
            descending=descending,
            page=page,
            page_size=page_size,
        )
        result = ctx.db(tickets.list_queue, filters)
        return TicketPage(
            tickets=[dataclasses.asdict(r) for r in result.rows],
            total=result.total,
            page=result.page,
            page_size=result.page_size,
            pages=result.pages,
        )

    @router.get("/tickets/{ticket_id}", response_model=TicketOut, tags=["tickets"], responses=AUTH_ERRORS)
    def get_ticket(_staff: TicketStaff, ticket_id: int = TicketId):
        """One ticket with its history."""
        ticket = ctx.db(tickets.get, ticket_id)
        if ticket is None:
            raise HTTPException(404, TICKET_NOT_FOUND)
        out = _ticket_out(ticket)
        contact = ctx.db(tickets.contact, ticket_id)
        if contact is not None:
            out.contact = ContactOut(**dataclasses.asdict(contact), name_conflict=contact.name_conflict)
        return out

    @router.post("/tickets", response_model=TicketOut, status_code=201, tags=["tickets"], responses=AUTH_ERRORS)
    def create_ticket(body: TicketCreate, response: Response, staff: TicketStaff):
        """Open a ticket (on a conversation, or standalone); a conversation's live ticket is returned as is (200)."""
        started = utcnow()
        try:
            ticket = ctx.db(
                tickets.open_ticket,
                conversation_id=body.conversation_id,
                customer_id=None,
                category=body.category.strip(),
                priority=body.priority,
                summary=body.summary.strip(),
                actor=staff.username,
            )
        except NotFoundError:
            raise HTTPException(404, "Conversation introuvable.") from None
        except ValueError as exc:
            raise HTTPException(422, f"Ticket invalide : {exc}") from None
        created = ticket.created_at >= started
        if not created:
            response.status_code = 200
        return _ticket_out(ticket)

    @router.patch(
        "/tickets/{ticket_id}",
        response_model=TicketOut,
        tags=["tickets"],
        responses={**AUTH_ERRORS, 404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
    )
    def update_ticket(body: TicketUpdate, staff: TicketStaff, ticket_id: int = TicketId):
        """Change status (allowed transitions only), assignee, and/or add an internal note."""
        if body.status is None and body.assignee is None and not body.unassign and body.note is None:
            raise HTTPException(422, "Aucune modification demandée (status, assignee, unassign ou note).")
        if body.assignee is not None and body.unassign:
            raise HTTPException(422, "Choisissez entre assignee et unassign.")
        if body.note is not None and not body.note.strip():
            raise HTTPException(422, "La note est vide.")
        if ctx.db(tickets.get, ticket_id) is None:
            raise HTTPException(404, TICKET_NOT_FOUND)
        if body.assignee is not None and body.assignee not in {u.username for u in ctx.db(services.staff.list_users)}:
            raise HTTPException(422, f"Conseiller inconnu ou désactivé : {body.assignee}.")
        try:
            if body.status is not None:
                ctx.db(tickets.set_status, ticket_id, body.status, staff.username)
            if body.assignee is not None or body.unassign:
                ctx.db(tickets.assign, ticket_id, body.assignee, staff.username)
            if body.note is not None:
                ctx.db(tickets.add_note, ticket_id, staff.username, body.note)
        except NotFoundError:
            raise HTTPException(404, TICKET_NOT_FOUND) from None
        except InvalidTransition as exc:
            raise HTTPException(409, f"Changement de statut impossible : {exc}") from None
        return _ticket_out(ctx.db(tickets.get, ticket_id))

    @router.get("/analytics", response_model=AnalyticsOut, tags=["analytics"], responses=AUTH_ERRORS)
    def analytics(
        _staff: AnalyticsStaff,
        start: Annotated[date | None, Query(description="Premier jour (AAAA-MM-JJ), défaut : il y a 29 jours.")] = None,
        end: Annotated[date | None, Query(description="Dernier jour inclus, défaut : aujourd'hui.")] = None,
    ):
        """Headline KPIs of the period, the previous period and the deltas, with the daily conversation series."""
        from tickets.analytics import period_from_dates

        end = end or utcnow().date()
        try:
            start = start or end - timedelta(days=29)
            period = period_from_dates(start, end)
            period.previous()  # the comparison period must exist too
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        except OverflowError:
            raise HTTPException(422, "Date hors limites : utilisez une date réelle (AAAA-MM-JJ).") from None
        report = ctx.db(services.analytics.report, period.start, period.end)
        daily = report.conversations_daily.astype(object).where(report.conversations_daily.notna(), None)
        return AnalyticsOut(
            start=start,
            end=end,
            kpis=dataclasses.asdict(report.kpis),
            previous=dataclasses.asdict(report.previous),
            deltas=report.deltas,
            conversations_daily=daily.to_dict(orient="records"),
        )

    def staff_or_internal(request: Request, x_internal_token: str | None = Header(None, max_length=256)) -> str:
        internal = ctx.settings.api.internal_token
        if x_internal_token and internal is not None:
            if hmac.compare_digest(x_internal_token.encode(), internal.get_secret_value().encode()):
                return "internal"
            raise HTTPException(401, "Jeton interne invalide.")
        return ctx.staff("social")(request).username

    @router.post(
        "/mastodon/save-context",
        response_model=SaveContextResponse,
        status_code=201,
        tags=["mastodon"],
        responses=AUTH_ERRORS,
    )
    def save_context(body: SaveContextRequest, actor: Annotated[str, Depends(staff_or_internal)]):
        """Store a Mastodon post's context and return the personal chat link (token valid for a limited time)."""
        social = services.social
        if social is None:
            raise HTTPException(503, "Module social indisponible.")
        handle = body.handle if body.handle.startswith("@") else "@" + body.handle
        context = {
            "source": "mastodon",
            "handle": handle,
            "post_url": body.post_url,
            "status_id": body.status_id,
            "complaint": body.complaint.strip(),
            "urgency": body.urgency,
            "ticket_id": None,
        }
        token = ctx.db(social.tokens.issue, context)
        log.info("mastodon context saved by %s", actor)  # never the handle (personal data)
        return SaveContextResponse(
            token=token,
            link=chat_link(ctx.settings.public_url, token),
            expires_in_hours=social.tokens.ttl.total_seconds() / 3600,
        )

    return router


def _ticket_out(ticket) -> TicketOut:
    return TicketOut.model_validate(ticket, from_attributes=True)
