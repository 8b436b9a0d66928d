"""Customer chat endpoints: send a message (opening the conversation first) and read its history.

No ``from __future__ import annotations`` here: the request model is built at run time from the
settings (longest message) and FastAPI must see the class itself.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from fastapi import APIRouter, Header, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.idempotency import KEY_PATTERN, KeyedLocks, opening_scope, request_hash
from api.schemas import ChatMessageResponse, ConversationMessages, ErrorOut, MessageOut, chat_request_model
from guard import RateLimited
from rag.chat import AlreadyAnswered, ChatSession, Idempotency, MessageError
from rag.contact import ContactError, validate_contact
from social.links import ContactLinks, LinkOpening, LinkUnavailable

log = logging.getLogger(__name__)
NOT_FOUND = "Conversation introuvable ou clé d'accès invalide."
LINK_INVALID = "Ce lien de contact n'est plus valable (il expire après 24 h) ou est incorrect."
LINK_USED = (
    "Ce lien de contact a déjà été utilisé : il ne sert qu'une fois. Reprenez la conversation avec son "
    "identifiant et sa clé (X-Conversation-Key), ou écrivez sans context_token pour en ouvrir une nouvelle."
)
CONVERSATION_KEY_MAX = 128  # longest X-Conversation-Key header
AUTHORIZATION_MAX = 4096  # longest Authorization header
ERRORS = {
    401: {"model": ErrorOut},
    404: {"model": ErrorOut},
    409: {"model": ErrorOut},
    422: {"model": ErrorOut},
    429: {"model": ErrorOut},
    503: {"model": ErrorOut},
}


def chat_router(ctx) -> APIRouter:
    """Routes of the customer chat over ``ctx.services.chat``."""
    router = APIRouter(tags=["chat"])
    chat = ctx.services.chat
    ChatMessageRequest = chat_request_model(ctx.settings.rag.max_message_chars)

    def session_for(conversation_id: str, key: str | None, authorization: str | None, read: bool = True) -> ChatSession:
        """The session of a conversation whose access key was presented (header or bearer).

        With ``read=False`` the key alone proves access and the customer is left for the chat service
        to take from the conversation it reads anyway (one database round trip less per message)."""
        if not key and authorization and authorization.lower().startswith("bearer "):
            key = authorization[7:].strip()
        if not key:
            raise HTTPException(401, "Clé de conversation manquante (en-tête X-Conversation-Key).")
        if not ctx.keys.check(conversation_id, key):
            raise HTTPException(404, NOT_FOUND)
        if not read:
            return ChatSession(None, conversation_id)
        conversation = ctx.db(chat.conversations.get, conversation_id)
        if conversation is None:
            raise HTTPException(404, NOT_FOUND)
        return ChatSession(conversation.customer_id, conversation.id)

    def open_conversation(body, client: str) -> tuple[ChatSession, LinkOpening | None]:
        """A new conversation, or (``context_token``, first use only) the Mastodon post's one joined."""
        if body.user_info is None:
            raise HTTPException(
                422, "Pour démarrer une conversation, indiquez vos coordonnées (user_info : full_name, phone)."
            )
        info = body.user_info
        try:
            contact = validate_contact(info.full_name, info.phone, info.email)
        except ContactError as exc:
            raise _ContactInvalid(exc.errors) from None
        social = ctx.services.social
        if body.context_token and social is None:
            raise HTTPException(422, LINK_INVALID)
        ctx.limits.hit("conversations", client)  # per client address, shared with the chat tab
        if not body.context_token:
            return ctx.db(chat.start, contact, channel="api"), None
        try:  # not retried: the first use claims the link
            opening = ContactLinks(social, chat).join(body.context_token, contact)
        except LinkUnavailable as exc:
            raise HTTPException(409 if exc.used else 422, LINK_USED if exc.used else LINK_INVALID) from None
        return opening.session, opening

    locks = KeyedLocks()

    async def handle_message(body, request: Request, x_conversation_key: str | None, authorization: str | None,
                             idempotency_key: str | None):  # fmt: skip
        """A customer message, validated: the route's work, shared with ``api.fastpath`` (the same route without
        FastAPI's request handling).

        A message to an open conversation is answered on the event loop where the context has
        ``turns`` (PostgreSQL or a SQLite file, see ``ApiContext.open_turns``); anything else (an opening,
        a shared limit store, a retry waiting for its first call) runs in a thread of the server's pool."""
        try:
            text = chat.clean_message(body.message)
        except MessageError as exc:
            raise HTTPException(422, str(exc)) from None
        session = None
        if body.conversation_id is not None:
            session = session_for(body.conversation_id, x_conversation_key, authorization, read=False)
        turns = ctx.turns
        if session is None and turns is not None and turns.opens_conversations and not body.context_token:
            return await open_async(turns, body, request, text, idempotency_key)
        if turns is None or session is None:
            return await run_in_threadpool(send_message, body, request, text, session, idempotency_key)
        if idempotency_key is None:
            return await answer_async(turns, text, session, None)
        # The turn's read tells whether the key is taken: no lookup first.
        answered = await keyed_on_loop(turns, session.conversation_id, idempotency_key, body, look_up=False,
                                       answer=lambda claim: answer_async(turns, text, session, claim))  # fmt: skip
        if answered is not None:
            return answered
        # Another call with this key is on its way: wait for its answer in a thread, as the threaded path does.
        return await run_in_threadpool(send_message, body, request, text, session, idempotency_key)

    async def keyed_on_loop(turns, scope: str, key: str, body, look_up: bool, answer: Callable[[tuple], Awaitable]):
        """A call with an Idempotency-Key, on the event loop: ``answer(claim)``, or the response stored by an earlier
        call with this key (``look_up``: read first); None while another call with it is on its way here."""
        digest = request_hash(body.model_dump(mode="json"))
        with locks.hold(scope, key, blocking=False) as held:
            if not held:
                return None
            if look_up and (first := await turns.idempotency_record(scope, key)) is not None:
                return _replay(first, digest)
            try:
                return await answer((scope, key, digest))
            except AlreadyAnswered as exc:  # stored by an earlier call (or another process, just now)
                return _replay(exc, digest)
            except RateLimited:  # a retry of a stored call is answered even when the limit is reached
                if (first := await turns.idempotency_record(scope, key)) is None:
                    raise
                return _replay(first, digest)

    async def open_async(turns, body, request: Request, text: str, idempotency_key: str | None):
        """A message opening a conversation from contact details (no Mastodon link), on the event loop: what
        ``send_message`` and ``answer_message`` do for it, with the conversation opened and its first turn
        stored on ``turns``. Missing or invalid contact details, and a retry waiting for its first call, take
        the threaded path (its answers)."""
        scope = _idempotency_scope(body, None)
        if scope is None:
            return await run_in_threadpool(send_message, body, request, text, None, idempotency_key)
        if idempotency_key is None:
            return await opening_turn(turns, body, request, text, None)
        answered = await keyed_on_loop(turns, scope, idempotency_key, body, look_up=True,
                                       answer=lambda claim: opening_turn(turns, body, request, text, claim))  # fmt: skip
        if answered is not None:
            return answered
        return await run_in_threadpool(send_message, body, request, text, None, idempotency_key)

    async def opening_turn(turns, body, request: Request, text: str, claim: tuple | None):
        """``answer_message`` for a valid opening on the event loop (``ChatService.start_async``, ``send_async``)."""
        info = body.user_info
        contact = validate_contact(info.full_name, info.phone, info.email)  # valid: _idempotency_scope checked it
        ctx.limits.hit("conversations", ctx.client_ip(request))  # per client address, shared with the chat tab
        session = await chat.start_async(contact, turns)
        new_key = ctx.keys.key_for(session.conversation_id)
        ctx.limits.hit("conversation", session.conversation_id)
        body_of = _Rendered(lambda reply: _response(session, new_key, None, text, reply))
        idempotency = Idempotency(*claim, render=body_of.render) if claim else None
        try:
            reply = await chat.send_async(session, text, idempotency, turns)
        except Exception:
            await turns.delete_if_empty(session.conversation_id)  # nothing of a refused call stays stored
            raise
        return body_of.response(reply)

    @router.post("/chat/message", response_model=ChatMessageResponse, responses=ERRORS)
    async def post_message(
        body: ChatMessageRequest,
        request: Request,
        x_conversation_key: str | None = Header(None, max_length=CONVERSATION_KEY_MAX),
        authorization: str | None = Header(None, max_length=AUTHORIZATION_MAX),
        idempotency_key: str | None = Header(
            None, pattern=KEY_PATTERN, description="Client-chosen id (e.g. a UUID): a retry with the same key "
            "returns the first response and stores nothing new.",
        ),
    ):
        """Send a customer message; the first one (no conversation_id) opens a conversation and returns its key."""
        return await handle_message(body, request, x_conversation_key, authorization, idempotency_key)

    ctx.chat_message = ChatMessageRoute(ChatMessageRequest, handle_message)

    def send_message(body, request: Request, text: str, session: ChatSession | None, idempotency_key: str | None):
        """The whole message in a thread: a retry with a key in use waits for the first call, then gets its response."""
        scope = _idempotency_scope(body, session)
        if idempotency_key is None or scope is None:
            return answer_message(body, request, text, session, None)
        digest = request_hash(body.model_dump(mode="json"))
        with locks.hold(scope, idempotency_key):  # a concurrent retry waits for the first answer
            # An opening is looked up here; a later message's record is read with its conversation by the turn.
            first = ctx.db(chat.idempotency.get, scope, idempotency_key) if session is None else None
            if first is None:
                try:
                    return answer_message(body, request, text, session, (scope, idempotency_key, digest))
                except AlreadyAnswered as exc:  # stored by an earlier call (or another process, just now)
                    first = exc
                except RateLimited:  # a retry of a stored call is answered even when the limit is reached
                    if (first := ctx.db(chat.idempotency.get, scope, idempotency_key)) is None:
                        raise
            return _replay(first, digest)

    def answer_message(body, request: Request, text: str, session: ChatSession | None, claim: tuple | None):
        """Open the conversation if needed, answer and store the turn (with the idempotency record)."""
        new_key, opening = None, None
        if session is None:
            try:
                session, opening = open_conversation(body, ctx.client_ip(request))
            except _ContactInvalid as exc:
                return JSONResponse(
                    {"detail": "Coordonnées invalides : " + " ".join(exc.errors.values()), "errors": exc.errors}, 422
                )
            new_key = ctx.keys.key_for(session.conversation_id)
        ctx.limits.hit("conversation", session.conversation_id)
        body_of = _Rendered(lambda reply: _response(session, new_key, opening, text, reply))
        idempotency = Idempotency(*claim, render=body_of.render) if claim else None
        try:
            reply = chat.send(session, text, idempotency)  # not retried: it stores the message (see ApiContext.db)
        except PermissionError:
            raise HTTPException(404, NOT_FOUND) from None
        except Exception:
            if new_key is not None and opening is None:  # nothing of a refused call stays stored
                chat.discard_empty(session)
            raise
        return body_of.response(reply)

    async def answer_async(turns, text: str, session: ChatSession, claim: tuple | None):
        """``answer_message`` for an open conversation, on the event loop (``ChatService.send_async``)."""
        ctx.limits.hit("conversation", session.conversation_id)  # counters in this process' memory (see ApiContext)
        body_of = _Rendered(lambda reply: _response(session, None, None, text, reply))
        idempotency = Idempotency(*claim, render=body_of.render) if claim else None
        try:
            reply = await chat.send_async(session, text, idempotency, turns)
        except PermissionError:
            raise HTTPException(404, NOT_FOUND) from None
        return body_of.response(reply)

    def _response(session: ChatSession, new_key: str | None, opening, text: str, reply) -> ChatMessageResponse:
        answer = reply.answer
        return ChatMessageResponse(
            conversation_id=session.conversation_id,
            conversation_key=new_key,
            message=text,
            response=answer.text if answer else None,
            needs_escalation=bool(answer and answer.needs_escalation),
            ticket_id=reply.ticket.id if reply.ticket else (opening.ticket.id if opening and opening.ticket else None),
            notice=reply.notice,
            welcome=opening.welcome if opening else None,
            sources=[{"id": s.id, "title": s.title, "score": s.score} for s in (answer.sources if answer else [])],
            suggested_links=list(answer.links) if answer else [],
        )

    @router.get("/chat/conversation/{conversation_id}/messages", response_model=ConversationMessages, responses=ERRORS)
    def get_messages(
        conversation_id: str = Path(..., pattern=r"^[0-9a-f]{32}$"),
        x_conversation_key: str | None = Header(None, max_length=CONVERSATION_KEY_MAX),
        authorization: str | None = Header(None, max_length=AUTHORIZATION_MAX),
    ):
        """Messages of the conversation (needs its access key), oldest first."""
        session = session_for(conversation_id, x_conversation_key, authorization)
        messages = ctx.db(chat.history, session)
        conversation = ctx.db(chat.conversations.get, conversation_id)
        return ConversationMessages(
            conversation_id=conversation_id,
            status=conversation.status,
            messages=[MessageOut(id=m.id, role=m.role, content=m.content, created_at=m.created_at) for m in messages],
        )

    return router


class ChatMessageRoute(NamedTuple):
    """What ``api.fastpath`` needs to serve POST /chat/message as the route does: its body model and its work."""

    model: type
    handle: Callable[..., Awaitable[Any]]


class _Rendered:
    """A response body built once: stored with an Idempotency-Key's record (before the turn's ids exist) and sent as is."""

    def __init__(self, build) -> None:
        self.build = build
        self.body: dict | None = None

    def render(self, reply) -> dict:
        self.body = self.build(reply).model_dump(mode="json")
        return self.body

    def response(self, reply) -> JSONResponse:
        # A JSONResponse is sent as is: FastAPI would validate the model again against response_model.
        return JSONResponse(self.body if self.body is not None else self.render(reply))


def _replay(first, digest: str) -> JSONResponse:
    """The response stored by the first call with this Idempotency-Key (422 if this request differs)."""
    if first.request_hash != digest:
        raise HTTPException(422, "Cette clé Idempotency-Key a déjà servi pour une autre requête.")
    return JSONResponse(first.response, headers={"Idempotency-Replayed": "true"})


class _ContactInvalid(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("invalid contact")
        self.errors = errors


def _ticket_data(ticket) -> dict:
    """What a webhook tells about a ticket (no customer personal data)."""
    return {
        "id": ticket.id,
        "conversation_id": ticket.conversation_id,
        "category": ticket.category,
        "priority": ticket.priority,
        "status": ticket.status,
        "assignee": ticket.assignee,
        "created_at": ticket.created_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
    }


def _idempotency_scope(body, session: ChatSession | None) -> str | None:
    """Where an Idempotency-Key lives: the conversation, or the phone of a message opening one (None if invalid)."""
    if session is not None:
        return session.conversation_id
    info = body.user_info
    try:
        return opening_scope(validate_contact(info.full_name, info.phone, info.email).phone) if info else None
    except ContactError:
        return None  # answered 422 by the opening itself
