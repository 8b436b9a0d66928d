"""Customer chat tab: contact form, multi-turn chat with sources, feedback and escalation."""

from __future__ import annotations

import logging

import gradio as gr

from guard import RateLimited, client_address
from rag.chat import ChatSession, DuplicateMessage, MessageError
from rag.contact import ContactError, validate_contact
from social.links import LINK_USED, ContactLinks
from ui.chat_format import (
    WELCOME,
    answer_markdown,
    customer_text,
    errors_markdown,
    history_messages,
    link_welcome_markdown,
    plain_markdown,
)
from ui.chat_live import create_live_updates

log = logging.getLogger(__name__)
MAX_BINDINGS = 20  # contact links remembered per browser
ANSWER_ERROR = "⚠️ Une erreur est survenue pendant la réponse, vous pouvez réessayer."


class ChatCallbacks:
    """Thin Gradio callbacks over ChatService; per-user data lives in gr.State only."""

    def __init__(self, services) -> None:
        self.chat = services.chat
        self.services = services

    def start(self, name: str, phone: str, email: str, link: str | None = None,
              request: gr.Request = None):
        """Validate the form; on success open a conversation and show the chat."""
        try:
            contact = validate_contact(name, phone, email)
        except ContactError as exc:
            return None, [], [], gr.update(value=errors_markdown(exc.errors), visible=True), gr.update(), gr.update()
        if blocked := self._limited("conversations", self._client(request)):  # before anything is stored
            return None, [], [], gr.update(value=blocked, visible=True), gr.update(), gr.update()
        first = contact.full_name.split(" ")[0]
        if link:  # arrived from a Mastodon reply: join the post's conversation (re-checked: first use only)
            opening = ContactLinks(self.services.social, self.chat).open(link, contact)
            session = opening.session
            welcome = [{"role": "assistant", "content": link_welcome_markdown(first, opening.welcome, opening.notice)}]
        else:
            session = self.chat.start(contact)
            welcome = [{"role": "assistant", "content": f"{WELCOME}\n\nEnchanté, {customer_text(first)} !"}]
        return session, welcome, [None], gr.update(value="", visible=False), gr.update(visible=False), gr.update(visible=True)

    def send(self, text: str, session: ChatSession | None, history: list, ids: list):
        """Post a message: echo it at once, then show the answer (streamed token by token in generative modes).

        The last output (busy) pauses the live poll meanwhile, so an agent message arriving during a
        stream is shown after it instead of being overwritten by the next token.
        """
        if session is None:
            yield history, ids, text, "⚠️ Merci de remplir d'abord le formulaire de contact.", False
            return
        try:
            clean = self.chat.clean_message(text)
        except MessageError as exc:
            yield history, ids, text, f"⚠️ {exc}", False
            return
        try:
            release = self.chat.claim(session, clean)
        except DuplicateMessage:  # a double click (or Enter then click): the first event answers and stores it
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        stored = False
        try:
            stored = yield from self._answer(session, clean, text, history, ids)
        finally:
            release(stored=stored)

    def _answer(self, session: ChatSession, clean: str, text: str, history: list, ids: list):
        """The body of send() once the message is claimed: limit, echo, answer, store, show; True once stored."""
        if blocked := self._limited("conversation", session.conversation_id):  # nothing stored beyond the limit
            yield history, ids, text, blocked, False
            return False
        history = [*history, {"role": "user", "content": customer_text(clean)},
                   {"role": "assistant", "content": "…"}]
        yield history, [*ids, None, None], "", "", True
        reply = None
        try:
            for item in self.chat.send_stream(session, clean):
                if isinstance(item, str):  # generative modes: the answer grows token by token
                    history[-1] = {"role": "assistant", "content": customer_text(item)}
                    yield history, [*ids, None, None], "", "", True
                else:
                    reply = item
        except Exception:  # answering failed (even mid-stream): never stay busy, the live poll must resume
            log.exception("answer failed in conversation %s", session.conversation_id)
            # No answer was stored: drop any partial text, say so, and give the text back to send again.
            history[-1] = {"role": "assistant", "content": ANSWER_ERROR}
            yield history, [*ids, None, None], text, "", False
            return False
        history = history[:-1]
        ids = [*ids, None]
        if reply.answer is not None:
            history.append({"role": "assistant", "content": answer_markdown(reply.answer)})
            ids.append(reply.assistant_message_id)
        if reply.notice:
            # Gradio groups consecutive bot messages into one bubble: a vote on the notice counts
            # for the answer it follows.
            history.append({"role": "assistant", "content": reply.notice})
            ids.append(reply.assistant_message_id)
        status = f"🎫 Ticket n° {reply.ticket.id} ouvert." if reply.ticket else ""
        yield history, ids, "", status, False
        return True

    def _client(self, request: gr.Request | None) -> str:
        """The customer's address (forwarded headers only from trusted proxies), the key of per-client limits."""
        return client_address(request, self.services.settings.trusted_proxies)

    def _limited(self, name: str, key: str) -> str | None:
        """Count one event against the shared limiter; the French message when over the limit, else None."""
        try:
            self.services.limits.hit(name, key)
        except RateLimited as exc:
            return f"⚠️ {exc.detail}"
        return None

    def like(self, session: ChatSession | None, ids: list, data: gr.LikeData):
        """Record 👍/👎 on a bot answer; a 👎 opens the optional comment box."""
        index = data.index if isinstance(data.index, int) else data.index[0]
        message_id = ids[index] if session and 0 <= index < len(ids) else None
        if message_id is None:
            return None, gr.update(visible=False), ""
        liked = data.liked is True or data.liked == "Like"
        self.chat.feedback(session, message_id, liked)
        if liked:
            return None, gr.update(visible=False), "Merci pour votre retour !"
        return message_id, gr.update(visible=True), "Merci. Dites-nous ce qui n'allait pas (facultatif)."

    def comment(self, session: ChatSession | None, message_id: int | None, comment: str):
        """Attach the optional comment to the 👎 vote."""
        if session and message_id is not None and comment.strip():
            self.chat.feedback(session, message_id, False, comment)
        return None, gr.update(visible=False), "", "Merci, votre commentaire a été transmis."

    def model_status(self):
        """Generative model state for the indicator (hidden in extractive mode; a promotion may change it).

        The timer slows down while the mode is extractive: only a promotion can change the line then.
        """
        engine = self.services.engine
        generative = engine.answer_mode != "extractive"
        indicator = gr.update(value=engine.llm.status_text() if generative else "", visible=generative)
        return indicator, gr.Timer(_status_every(generative))

    def restore(self, bindings: dict | None, checked: bool, request: gr.Request):
        """On page load, read `?token=…` from a Mastodon reply: show the post, or resume its conversation.

        Outputs: link token, note above the form, then (resumed only) session, chat, ids, form, chat
        area and poll cursor, and ``checked``. Only the browser that first used the link holds its
        binding. The event also fires when the stored bindings change: ``checked`` makes it once.
        """
        if checked:
            return (gr.skip(),) * 9
        skip = (*(gr.skip(),) * 6, True)
        token = (request.query_params.get("token") or "").strip() if request else ""
        social = getattr(self.services, "social", None)
        if not token or social is None:
            return None, gr.update(visible=False), *skip
        view = ContactLinks(social, self.chat).view(token, bindings if isinstance(bindings, dict) else {})
        if view.status == "resume":
            messages = self.chat.history(view.session)
            history, ids = history_messages(messages)
            history.append({"role": "assistant", "content": "🔁 Vous reprenez votre conversation."})
            cursor = max((m.id for m in messages), default=0)  # what is shown is never pushed again
            return (None, gr.update(visible=False), view.session, history, [*ids, None], gr.update(visible=False),
                    gr.update(visible=True), cursor, True)  # fmt: skip
        if view.status == "used":
            return None, gr.update(visible=True, value=plain_markdown(LINK_USED)), *skip
        if view.status == "invalid":
            return None, gr.update(visible=True, value=(
                "⚠️ Ce lien de contact n'est plus valable (il expire après 24 h) ou est incorrect. "
                "Remplissez le formulaire ci-dessous pour démarrer une conversation.")), *skip
        quote = plain_markdown(" ".join(view.context.get("complaint", "").split())[:280])
        return token, gr.update(visible=True, value=(
            f"📣 Suite à votre message sur Mastodon ({plain_markdown(view.context.get('handle', ''))}) : « {quote} »\n\n"
            "Renseignez vos coordonnées : vous rejoindrez la conversation ouverte pour votre message.")), *skip

    def remember_link(self, session: ChatSession | None, link: str | None, bindings: dict | None):
        """After the first use, keep the link's binding secret in this browser (localStorage) to come back later."""
        social = getattr(self.services, "social", None)
        binding = ContactLinks(social, self.chat).bind(link, session) if social is not None else None
        if binding is None:
            return gr.skip()
        kept = dict(list((bindings if isinstance(bindings, dict) else {}).items())[-(MAX_BINDINGS - 1):])
        return {**kept, session.conversation_id: binding}

    def reset(self):
        """New conversation: forget the session, any pending 👎 comment, the Mastodon link context and the cursor."""
        return (None, [], [], gr.update(visible=True), gr.update(visible=False), "", None, gr.update(visible=False), "",
                None, gr.update(visible=False, value=""), 0)


def _create_model_status(cb: ChatCallbacks, services) -> gr.Markdown:
    """The « Modèle génératif : chargement… / prêt / indisponible » line, shown only in generative modes.

    A trainer may promote another model while pages are open, so a light timer keeps it current.
    """
    generative = services.engine.answer_mode != "extractive"
    indicator = gr.Markdown(services.engine.llm.status_text() if generative else "", visible=generative,
                            elem_id="model-status")
    timer = gr.Timer(_status_every(generative))
    timer.tick(cb.model_status, None, [indicator, timer], api_name=False, show_progress="hidden")
    return indicator


def _status_every(generative: bool) -> float:
    """Seconds between two refreshes of the model line: 3 while a model loads or answers, else 30."""
    return 3 if generative else 30


def create_chat_tab(services) -> dict[str, gr.Component]:
    """Build the customer tab inside the current Blocks context."""
    cb = ChatCallbacks(services)
    session, ids, disliked, busy = gr.State(None), gr.State([]), gr.State(None), gr.State(False)
    link = gr.State(None)  # the token of a Mastodon reply's link, while its post can still be joined
    # Binding secrets of the links this browser used first ({conversation id: secret}). Gradio decrypts
    # BrowserState in the page, so its key protects nothing; a fixed one keeps the value across restarts.
    bindings = gr.BrowserState({}, storage_key="mobiliachat-contact-links", secret="mobiliachat-contact-links")
    with gr.Column(visible=True, elem_id="contact-form") as form:
        gr.Markdown("### Avant de commencer\nCes informations permettent à un conseiller de vous recontacter si besoin.")
        social_note = gr.Markdown(visible=False, elem_id="contact-social-note")
        name = gr.Textbox(label="Nom complet", elem_id="contact-name", max_lines=1)
        phone = gr.Textbox(label="Numéro de mobile", placeholder="06 12 34 56 78", elem_id="contact-phone", max_lines=1)
        email = gr.Textbox(label="E-mail (facultatif)", elem_id="contact-email", max_lines=1)
        form_errors = gr.Markdown(visible=False, elem_id="contact-errors")
        start = gr.Button("Commencer la conversation", variant="primary", elem_id="contact-submit")
    with gr.Column(visible=False, elem_id="chat-area") as chat_area:
        chatbot = gr.Chatbot(label="Conversation", height=520, elem_id="chatbot", feedback_options=("Like", "Dislike"))
        with gr.Row():
            message = gr.Textbox(label="Votre message", placeholder="Écrivez votre question…", scale=5,
                                 elem_id="chat-input", max_lines=6, info="1000 caractères maximum")
            send = gr.Button("Envoyer", variant="primary", scale=1, elem_id="chat-send")
        status = gr.Markdown(elem_id="chat-status")
        model_status = _create_model_status(cb, services)
        live = create_live_updates(services, session, chatbot, ids, status, busy)
        with gr.Row(visible=False, elem_id="feedback-box") as comment_box:
            comment = gr.Textbox(label="Qu'est-ce qui n'allait pas ? (facultatif)", elem_id="feedback-comment",
                                 max_lines=3, scale=5)
            comment_send = gr.Button("Envoyer le commentaire", size="sm", elem_id="feedback-send", scale=1)
        new = gr.Button("Nouvelle conversation", elem_id="chat-new")

    checked = gr.State(False)  # the link was looked at (this page load)
    gr.on(None, cb.restore, [bindings, checked],  # triggers=None: runs on page load (and on input changes)
          [link, social_note, session, chatbot, ids, form, chat_area, live["cursor"], checked], api_name=False)
    start.click(cb.start, [name, phone, email, link], [session, chatbot, ids, form_errors, form, chat_area],
                api_name="start_chat").then(cb.remember_link, [session, link, bindings], bindings, api_name=False,
                                            show_progress="hidden")
    send.click(cb.send, [message, session, chatbot, ids], [chatbot, ids, message, status, busy], api_name="send_message")
    message.submit(cb.send, [message, session, chatbot, ids], [chatbot, ids, message, status, busy], api_name=False)
    chatbot.like(cb.like, [session, ids], [disliked, comment_box, status], api_name=False)
    comment_send.click(cb.comment, [session, disliked, comment], [disliked, comment_box, comment, status], api_name=False)
    new.click(cb.reset, None,
              [session, chatbot, ids, form, chat_area, status, disliked, comment_box, comment, link, social_note,
               live["cursor"]],
              api_name=False)
    return {"chatbot": chatbot, "message": message, "send": send, "status": status, "form": form,
            "model_status": model_status, **live}
