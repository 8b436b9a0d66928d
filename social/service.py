"""Social business logic shared by the monitor thread, the social tab and the CLI.

``handle_status`` scores a Mastodon status, stores it once and, for a complaint, drafts a reply
and (HIGH urgency) opens the post's conversation with a ticket. A post has one conversation,
opened then or when the customer first follows the reply's link (``conversation_for_link``).
``send_reply`` is the only code path that posts a reply, for auto mode and for agents alike: it
claims the post with a compare-and-set on ``reply_status``, issues the personal chat token, and
posts with an idempotency key derived from the status id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from social.analysis import PostAnalysis, analyze_post
from social.config import MastodonSettings
from social.replies import LINK_MARKER, MAX_CHARS, chat_link, draft_reply, fill_link, opens_ticket, post_message
from social.store import PostFilter, SocialPostRepository
from social.tokens import ContactTokenService
from storage import ConversationRepository, MessageRepository
from storage.db import Database
from storage.models import MastodonPost, utcnow

log = logging.getLogger(__name__)

SENDABLE = ("pending", "queued", "failed")  # states an agent may send from


class ReplyError(ValueError):
    """A reply that cannot be sent; the message is French, for the social tab."""


@dataclass
class Decision:
    """What ``handle_status`` did with one status."""

    post: MastodonPost
    inserted: bool
    analysis: PostAnalysis


def make_client(settings: MastodonSettings) -> Any:
    """A Mastodon.py client for the configured account, honouring rate limits."""
    from mastodon import Mastodon

    return Mastodon(
        api_base_url=settings.instance_url,
        access_token=settings.token(),
        ratelimit_method=settings.ratelimit_method,
        request_timeout=settings.request_timeout,
    )


def _is_permanent(exc: Exception) -> bool:
    """True for API errors that a retry cannot fix (4xx other than 429)."""
    from mastodon.errors import MastodonAPIError, MastodonNetworkError, MastodonRatelimitError

    if isinstance(exc, MastodonNetworkError | MastodonRatelimitError):
        return False
    if isinstance(exc, MastodonAPIError):
        code = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        return 400 <= code < 500 and code != 429
    return False


class SocialService:
    """Stores and answers Mastodon posts; the client is created lazily (nothing at import)."""

    def __init__(
        self,
        settings: MastodonSettings,
        db: Database,
        tickets: Any,
        *,
        public_url: str,
        client_factory: Callable[[MastodonSettings], Any] = make_client,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.db = db
        self.tickets = tickets
        self.public_url = public_url
        self.posts = SocialPostRepository(db)
        self.tokens = ContactTokenService(db, ttl=timedelta(hours=settings.token_ttl_hours), clock=clock)
        self.clock = clock
        self._client_factory = client_factory
        self._client: Any = None
        self._me: dict[str, str] | None = None
        # Replicas: the monitor's lease check; automatic replies wait while it says no (an agent's send does not).
        self.guard: Callable[[], bool] | None = None
        if hasattr(tickets, "subscribe"):
            tickets.subscribe(self._on_ticket)

    # --- Mastodon account ---------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The Mastodon.py client (created on first use)."""
        if self._client is None:
            if not self.settings.enabled:
                raise ReplyError("Mastodon n'est pas configuré (URL de l'instance et jeton d'accès).")
            self._client = self._client_factory(self.settings)
        return self._client

    def me(self) -> dict[str, str]:
        """Id and acct of our support account (cached)."""
        if self._me is None:
            account = self.client.account_verify_credentials()
            self._me = {"id": str(account["id"]), "acct": account["acct"]}
        return self._me

    # --- intake ---------------------------------------------------------------------------

    def handle_status(self, status: dict[str, Any], source: str) -> Decision | None:
        """Score, store once and act on a status; None when ignored (ours, a boost, irrelevant)."""
        if status.get("reblog"):
            return None
        me = self.me()
        account = status["account"]
        if str(account["id"]) == me["id"]:
            return None  # our own replies carry #SAVFree: never answer ourselves
        analysis = analyze_post(
            status.get("content") or "",
            tags=[t["name"] for t in status.get("tags") or []],
            mentions=[m["acct"] for m in status.get("mentions") or []],
            hashtags=self.settings.hashtags,
            keywords=self.settings.keywords,
            own_acct=me["acct"],
            threshold=self.settings.complaint_threshold,
        )
        if not analysis.relevant:
            return None
        reply_status, reply_text = "none", None
        if analysis.is_complaint and self.settings.reply_mode != "off":
            reply_status = "queued" if self.settings.reply_mode == "auto" else "pending"
            reply_text = draft_reply(account["acct"], analysis.urgency, self.settings.token_ttl_hours)
        created = status.get("created_at")
        post, inserted = self.posts.insert_if_new(
            {
                "status_id": str(status["id"]),
                "account": account["acct"],
                "url": status.get("url") or status.get("uri") or "",
                "content": analysis.text,
                "created_at": created if isinstance(created, datetime) and created.tzinfo else self.clock(),
                "fetched_at": self.clock(),
                "is_complaint": analysis.is_complaint,
                "complaint_score": analysis.score,
                "urgency": analysis.urgency,
                "reason": analysis.reason + f" ; Source : {source}",
                "reply_status": reply_status,
                "reply_text": reply_text,
            }
        )
        if post.is_complaint and opens_ticket(post.urgency) and post.ticket_id is None:
            self.open_ticket_for(post)
            post = self.posts.get(post.id) or post
        if inserted and post.reply_status == "queued" and self._may_send():
            post = self.send_reply(post.id)
        return Decision(post=post, inserted=inserted, analysis=analysis)

    def context_of(self, post: MastodonPost) -> dict[str, Any]:
        """The context attached to the chat conversation opened from the reply's link."""
        return {
            "source": "mastodon",
            "handle": "@" + post.account,
            "post_url": post.url,
            "status_id": post.status_id,
            "complaint": post.content,
            "urgency": post.urgency,
            "ticket_id": post.ticket_id,
        }

    def conversation_of(self, post: MastodonPost) -> str:
        """The post's one conversation (the post is its first message), opened on first need."""
        context = self.context_of(post)
        return self.posts.ensure_conversation(post.id, post_message(context), context)

    def conversation_for_link(self, context: dict[str, Any]) -> str:
        """The conversation a contact link joins: its post's, or (a link saved without a monitored post) a new one."""
        post = self.posts.by_status_id(str(context["status_id"])) if context.get("status_id") else None
        if post is not None:
            return self.conversation_of(post)
        conversation = ConversationRepository(self.db).create(channel="mastodon", context=dict(context))
        meta = {"source": "mastodon", "handle": context.get("handle"), "post_url": context.get("post_url")}
        MessageRepository(self.db).add(conversation.id, "user", post_message(context), meta=meta)
        return conversation.id

    def open_ticket_for(self, post: MastodonPost) -> None:
        """HIGH urgency: the post's conversation, and a ticket of the post's urgency on it."""
        ticket = self.tickets.open_ticket(
            conversation_id=self.conversation_of(post),
            customer_id=None,
            category="réclamation",
            priority=post.urgency or "HIGH",
            summary=f"Mastodon @{post.account} : {post.content[:300]}",
            actor="social-monitor",
            source_key=f"mastodon:{post.status_id}",  # unique: one ticket per post, whichever replica saw it
        )
        self.posts.set_ticket(post.id, ticket.id)
        log.info("ticket %s opened for Mastodon status %s", ticket.id, post.status_id)

    def _on_ticket(self, event: str, ticket: Any) -> None:
        """A ticket opened later in a post's conversation (the customer asked for one) becomes the post's ticket."""
        if event == "ticket.created" and ticket.conversation_id is not None:
            self.posts.set_ticket_for_conversation(ticket.conversation_id, ticket.id)

    # --- replies --------------------------------------------------------------------------

    def approve(self, post_id: int, text: str | None = None) -> MastodonPost:
        """Agent approval: pending/failed -> queued, optionally with an edited text."""
        values = {"reply_error": None}
        if text is not None:
            values["reply_text"] = self._checked_text(text)
        if not self.posts.transition(post_id, ("pending", "failed"), "queued", **values):
            raise ReplyError("Cette réponse n'est plus en attente (déjà envoyée ou en cours d'envoi).")
        return self.posts.get(post_id)

    def edit(self, post_id: int, text: str) -> MastodonPost:
        """Change a draft that is still waiting (pending, queued or failed)."""
        if not self.posts.transition(
            post_id, ("pending",), "pending", reply_text=self._checked_text(text)
        ) and not self.posts.transition(post_id, ("queued", "failed"), "queued", reply_text=self._checked_text(text)):
            raise ReplyError("Cette réponse ne peut plus être modifiée.")
        return self.posts.get(post_id)

    def skip(self, post_id: int) -> MastodonPost:
        """Agent decision not to answer publicly."""
        if not self.posts.transition(post_id, ("pending", "queued", "failed"), "skipped"):
            raise ReplyError("Cette réponse ne peut plus être ignorée.")
        return self.posts.get(post_id)

    def send_now(self, post_id: int, text: str | None = None) -> MastodonPost:
        """Agent 'send': approve (with the edited text) then go through ``send_reply``."""
        post = self.posts.get(post_id)
        if post is None:
            raise ReplyError("Publication introuvable.")
        if post.reply_status in ("pending", "failed"):
            self.approve(post_id, text)
        elif post.reply_status == "queued" and text is not None:
            self.edit(post_id, text)
        elif post.reply_status != "queued":
            raise ReplyError("Une réponse a déjà été envoyée ou est en cours d'envoi pour cette publication.")
        post = self.send_reply(post_id)
        if post.reply_status == "failed":
            raise ReplyError(f"Échec de l'envoi : {post.reply_error}")
        return post

    def _checked_text(self, text: str) -> str:
        """Refuse an empty draft or one that cannot fit 500 characters with its link."""
        text = text.strip()
        if not text:
            raise ReplyError("La réponse est vide.")
        sample_link = chat_link(self.public_url, "x" * 43)
        if len(text.replace(LINK_MARKER, sample_link)) > MAX_CHARS:
            raise ReplyError(f"La réponse dépasse {MAX_CHARS} caractères une fois le lien ajouté.")
        return text

    def send_reply(self, post_id: int) -> MastodonPost:
        """Post the reply of a queued post exactly once; the claim makes concurrent calls no-ops."""
        if not self.posts.transition(post_id, ("queued",), "sending"):
            return self.posts.get(post_id)  # someone else sent it, or it is not approved
        post = self.posts.get(post_id)
        if post.reply_status_id:  # belt and braces: a recorded reply is never repeated
            self.posts.transition(post_id, ("sending",), "sent")
            return self.posts.get(post_id)
        token = self.tokens.issue(self.context_of(post))
        hours = self.settings.token_ttl_hours
        text = fill_link(
            post.reply_text or draft_reply(post.account, post.urgency, hours),
            chat_link(self.public_url, token),
            post.account,
            hours,
        )
        try:
            reply = self.client.status_post(
                text, in_reply_to_id=post.status_id, idempotency_key=f"mobiliachat-reply-{post.status_id}"
            )
        except Exception as exc:
            permanent = _is_permanent(exc)
            self.posts.transition(
                post_id,
                ("sending",),
                "failed" if permanent else "queued",
                reply_error=f"{type(exc).__name__}: {exc}"[:500],
            )
            log.warning(
                "reply to status %s failed (%s): %s",
                post.status_id,
                "permanent" if permanent else "will retry",
                type(exc).__name__,
            )
            return self.posts.get(post_id)
        self.posts.transition(
            post_id, ("sending",), "sent", reply_status_id=str(reply["id"]), reply_text=text, reply_error=None
        )
        log.info("replied to status %s with %s", post.status_id, reply["id"])
        return self.posts.get(post_id)

    def send_queued(self) -> int:
        """Send every approved reply still waiting (after a reconnect); returns how many were sent."""
        sent = 0
        for post in self.posts.with_status(("queued",)):
            if not self._may_send():
                break  # the lease is in doubt: the replica that holds it next sends them
            sent += self.send_reply(post.id).reply_status == "sent"
        return sent

    def _may_send(self) -> bool:
        """True unless this replica's monitor lease is in doubt (then the reply stays queued)."""
        return self.guard is None or self.guard()

    def reconcile_stale(self, older_than: timedelta) -> int:
        """Settle replies left 'sending' by a crash: look on the server before ever posting again."""
        fixed = 0
        me = self.me()
        for post in self.posts.stale_sending(self.clock() - older_than):
            descendants = self.client.status_context(post.status_id)["descendants"]
            ours = [
                s
                for s in descendants
                if str(s["account"]["id"]) == me["id"] and str(s.get("in_reply_to_id")) == post.status_id
            ]
            if ours:
                self.posts.transition(post.id, ("sending",), "sent", reply_status_id=str(ours[0]["id"]))
            else:
                self.posts.transition(post.id, ("sending",), "queued")
            fixed += 1
        return fixed

    def list_posts(self, flt: PostFilter | None = None) -> list[MastodonPost]:
        """Posts for the social tab."""
        return self.posts.list(flt)
