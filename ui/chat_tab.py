"""Customer chat tab: contact form, multi-turn chat with sources, feedback and escalation."""

from __future__ import annotations

import gradio as gr

from rag.chat import ChatSession, MessageError
from rag.contact import ContactError, validate_contact
from ui.chat_format import WELCOME, answer_markdown, customer_text, errors_markdown
from ui.chat_live import create_live_updates


class ChatCallbacks:
    """Thin Gradio callbacks over ChatService; per-user data lives in gr.State only."""

    def __init__(self, services) -> None:
        self.chat = services.chat
        self.services = services

    def start(self, name: str, phone: str, email: str, link: tuple[str, dict] | None = None):
        """Validate the form; on success open a conversation and show the chat."""
        try:
            contact = validate_contact(name, phone, email)
        except ContactError as exc:
            return None, [], [], gr.update(value=errors_markdown(exc.errors), visible=True), gr.update(), gr.update()
        if link:  # arrived from a Mastodon reply: attach the post context to the conversation
            token, context = link
            session = self.chat.start(contact, context=context, channel="mastodon")
            self.services.social.tokens.mark_used(token, session.conversation_id)
        else:
            session = self.chat.start(contact)
        first = contact.full_name.split(" ")[0]
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
        history = [*history, {"role": "user", "content": customer_text(clean)},
                   {"role": "assistant", "content": "…"}]
        yield history, [*ids, None, None], "", "", True
        reply = None
        for item in self.chat.send_stream(session, clean):
            if isinstance(item, str):  # generative modes: the answer grows token by token
                history[-1] = {"role": "assistant", "content": customer_text(item)}
                yield history, [*ids, None, None], "", "", True
            else:
                reply = item
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
        """Generative model state for the indicator (hidden in extractive mode; a promotion may change it)."""
        engine = self.services.engine
        generative = engine.answer_mode != "extractive"
        return gr.update(value=engine.llm.status_text() if generative else "", visible=generative)

    def restore(self, request: gr.Request):
        """On page load, resolve `?token=…` from a Mastodon reply into the post context."""
        token = (request.query_params.get("token") or "").strip() if request else ""
        social = getattr(self.services, "social", None)
        if not token or social is None:
            return None, gr.update(visible=False)
        context = social.tokens.resolve(token)
        if context is None:
            return None, gr.update(visible=True, value=(
                "⚠️ Ce lien de contact n'est plus valable (il expire après 24 h) ou est incorrect. "
                "Remplissez le formulaire ci-dessous pour démarrer une conversation."))
        quote = customer_text(context.get("complaint", ""))[:280]
        return (token, context), gr.update(visible=True, value=(
            f"📣 Suite à votre message sur Mastodon ({customer_text(context.get('handle', ''))}) : « {quote} »\n\n"
            "Renseignez vos coordonnées : votre message sera joint à la conversation."))

    def reset(self):
        """New conversation: forget the session, any pending 👎 comment and the Mastodon link context."""
        return (None, [], [], gr.update(visible=True), gr.update(visible=False), "", None, gr.update(visible=False), "",
                None, gr.update(visible=False, value=""))


def _create_model_status(cb: ChatCallbacks, services) -> gr.Markdown:
    """The « Modèle génératif : chargement… / prêt / indisponible » line, shown only in generative modes.

    A trainer may promote another model while pages are open, so a light timer keeps it current.
    """
    generative = services.engine.answer_mode != "extractive"
    indicator = gr.Markdown(services.engine.llm.status_text() if generative else "", visible=generative,
                            elem_id="model-status")
    timer = gr.Timer(3)
    timer.tick(cb.model_status, None, indicator, api_name=False, show_progress="hidden")
    return indicator


def create_chat_tab(services) -> dict[str, gr.Component]:
    """Build the customer tab inside the current Blocks context."""
    cb = ChatCallbacks(services)
    session, ids, disliked, busy = gr.State(None), gr.State([]), gr.State(None), gr.State(False)
    link = gr.State(None)  # (token, Mastodon context) when opened from a reply's link
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

    gr.on(None, cb.restore, None, [link, social_note], api_name=False)  # triggers=None: runs on page load
    start.click(cb.start, [name, phone, email, link], [session, chatbot, ids, form_errors, form, chat_area],
                api_name="start_chat")
    send.click(cb.send, [message, session, chatbot, ids], [chatbot, ids, message, status, busy], api_name="send_message")
    message.submit(cb.send, [message, session, chatbot, ids], [chatbot, ids, message, status, busy], api_name=False)
    chatbot.like(cb.like, [session, ids], [disliked, comment_box, status], api_name=False)
    comment_send.click(cb.comment, [session, disliked, comment], [disliked, comment_box, comment, status], api_name=False)
    new.click(cb.reset, None,
              [session, chatbot, ids, form, chat_area, status, disliked, comment_box, comment, link, social_note],
              api_name=False)
    return {"chatbot": chatbot, "message": message, "send": send, "status": status, "form": form,
            "model_status": model_status, **live}
