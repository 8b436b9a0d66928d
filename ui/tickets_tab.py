"""Agent console (tickets tab): the queue, a ticket's detail and the actions on it.

Every callback re-checks the logged-in account server-side (`require(..., "tickets")`) and shows
a French message instead of acting when it is refused; the work itself is TicketService's.
"""

from __future__ import annotations

import functools

import gradio as gr

from storage import NotFoundError
from tickets import PRIORITY_LABELS, STATUS_LABELS, UNASSIGNED, QueueFilters
from tickets.canned import CANNED_REPLIES, canned_reply
from tickets.users import AccessDenied, StaffPrincipal, require
from ui import tickets_format as fmt

ME = "__me__"
ANY = [("Tous", "")]
SORTS = [
    ("Échéance SLA la plus proche", "sla"),
    ("Priorité la plus haute", "priority"),
    ("Plus récents d'abord", "created_desc"),
    ("Plus anciens d'abord", "created"),
]
PAGE_SIZE = 15
REFRESH_S = 10


def guarded(n_outputs: int):
    """Run a callback for an allowed agent only; on refusal or a business error, only the message changes.

    The message is always the callback's last output; the others are left as they are.
    """

    def wrap(method):
        @functools.wraps(method)
        def run(self, principal: StaffPrincipal | None, *args):
            try:
                agent = require(self.staff.current(principal), "tickets")
                return method(self, agent, *args)
            except AccessDenied as exc:
                error = f"🔒 {exc}"
            except NotFoundError:
                error = "⚠️ Ticket introuvable."
            except ValueError as exc:  # InvalidTransition and input errors carry a French message
                error = f"⚠️ {exc}"
            return (*[gr.skip()] * (n_outputs - 1), error)

        return run

    return wrap


class TicketsConsole:
    """Thin callbacks over TicketService; the open ticket id and page live in gr.State."""

    def __init__(self, services) -> None:
        self.tickets = services.tickets
        self.staff = services.staff

    def _filters(self, agent, status, priority, category, assignee, breached, sort, page) -> QueueFilters:
        return QueueFilters(
            status=status or None,
            priority=priority or None,
            category=category or None,
            assignee=agent.username if assignee == ME else (assignee or None),
            breached=bool(breached),
            sort="created" if sort == "created_desc" else (sort or "sla"),
            descending=sort == "created_desc",
            page=int(page or 1),
            page_size=PAGE_SIZE,
        )

    def _queue(self, agent, *filters) -> tuple:
        """Table rows, page label and current page for the filters (the last filter is the page)."""
        result = self.tickets.list_queue(self._filters(agent, *filters))
        return fmt.queue_rows(result, self.tickets.clock()), fmt.page_info(result), result.page

    @guarded(4)
    def queue(self, agent, *filters):
        """The queue for the agent's own refreshes (filters, pages, the refresh button): the message is cleared."""
        return (*self._queue(agent, *filters), "")

    @guarded(4)
    def requeue(self, agent, *filters):
        """The queue after an action or on the timer: the action's message ("✅ Réponse envoyée…") stays.

        Clearing it there wiped it the moment it appeared, before the agent could read it."""
        return (*self._queue(agent, *filters), gr.skip())

    def options(self, principal: StaffPrincipal | None):
        """On login: data-dependent dropdown choices and the periodic refresh; on logout: stop it."""
        try:
            agent = self.staff.current(principal)
        except AccessDenied:  # a staff session expired while idle: as after a logout
            agent = None
        if agent is None or not agent.can("tickets"):
            return gr.skip(), gr.skip(), gr.skip(), gr.Timer(active=False), "", ""
        agents = [u.username for u in self.staff.list_users() if u.can("tickets")]
        assignees = [*ANY, ("Moi", ME), ("Non assigné", UNASSIGNED), *[(a, a) for a in agents]]
        categories = [*ANY, *[(c, c) for c in self.tickets.categories()]]
        return (
            gr.update(choices=categories),
            gr.update(choices=assignees),
            gr.update(choices=agents),
            gr.Timer(active=True),
            f"Connecté : **{agent.username}**",
            "",
        )

    def _detail(self, ticket_id: int | None, message: str = "", force: bool = True):
        detail = self.tickets.detail(ticket_id) if ticket_id else None
        if detail is None:
            return (None, gr.update(visible=False), *[gr.skip()] * 6, "⚠️ Ticket introuvable." if ticket_id else "")
        t = detail.ticket
        now = self.tickets.clock()
        return (
            t.id,
            gr.update(visible=True),
            fmt.detail_header(detail, now),
            fmt.customer_markdown(detail),
            fmt.conversation_messages(detail.messages),
            fmt.events_markdown(detail.events),
            gr.update(value=t.status) if force else gr.skip(),
            fmt.first_name(detail),
            message,
        )

    @guarded(9)
    def select(self, agent, rows, evt: gr.SelectData):
        """Open the ticket of the clicked row."""
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        values = rows.values.tolist() if hasattr(rows, "values") else rows
        return self._detail(int(evt.row_value[0] if evt.row_value else values[row][0]))

    @guarded(9)
    def reload(self, agent, ticket_id):
        """Periodic refresh of the open ticket (keeps the status picked in the dropdown and the last message)."""
        return self._detail(ticket_id, gr.skip(), force=False) if ticket_id else (*[gr.skip()] * 8, gr.skip())

    @guarded(9)
    def take(self, agent, ticket_id):
        ticket = self.tickets.take(_required(ticket_id), agent.username)
        return self._detail(ticket.id, f"✅ Ticket n° {ticket.id} pris en charge par {agent.username}.")

    @guarded(9)
    def assign(self, agent, ticket_id, assignee):
        if not assignee:
            raise ValueError("Choisissez un conseiller.")
        ticket = self.tickets.assign(_required(ticket_id), assignee, agent.username)
        return self._detail(ticket.id, f"✅ Ticket assigné à {assignee}.")

    @guarded(9)
    def set_status(self, agent, ticket_id, status):
        ticket = self.tickets.set_status(_required(ticket_id), status, agent.username)
        return self._detail(ticket.id, f"✅ Statut : {fmt.status_label(ticket.status)}.")

    @guarded(10)
    def note(self, agent, ticket_id, body):
        self.tickets.add_note(_required(ticket_id), agent.username, body)
        return (*self._detail(ticket_id)[:-1], "", "✅ Note ajoutée.")

    @guarded(10)
    def reply(self, agent, ticket_id, text):
        self.tickets.reply_to_customer(_required(ticket_id), agent.username, text)
        return (*self._detail(ticket_id)[:-1], "", "✅ Réponse envoyée dans le chat du client.")

    @guarded(9)
    def release(self, agent, ticket_id):
        self.tickets.release(_required(ticket_id), agent.username)
        return self._detail(ticket_id, "🤖 L'assistant automatique reprend la conversation.")

    @guarded(2)
    def canned(self, agent, key, first_name):
        """Fill the reply box with a canned reply (the agent can edit it before sending)."""
        return (canned_reply(key, first_name) if key else gr.skip()), ""


def _required(ticket_id: int | None) -> int:
    if not ticket_id:
        raise ValueError("Sélectionnez d'abord un ticket dans la file.")
    return int(ticket_id)


def _build_filters() -> dict:
    with gr.Row(equal_height=True):
        status = gr.Dropdown(
            [*ANY, *[(v, k.value) for k, v in STATUS_LABELS.items()]],
            value="",
            label="Statut",
            elem_id="tq-status",
            min_width=120,
        )
        priority = gr.Dropdown(
            [*ANY, *[(v, k.value) for k, v in PRIORITY_LABELS.items()]],
            value="",
            label="Priorité",
            elem_id="tq-priority",
            min_width=120,
        )
        category = gr.Dropdown(ANY, value="", label="Catégorie", elem_id="tq-category", min_width=120)
        assignee = gr.Dropdown(ANY, value="", label="Assigné à", elem_id="tq-assignee", min_width=120)
        sort = gr.Dropdown(SORTS, value="sla", label="Trier par", elem_id="tq-sort", min_width=230)
        with gr.Column(min_width=150):
            breached = gr.Checkbox(label="SLA dépassé uniquement", elem_id="tq-breached")
            refresh = gr.Button("🔄 Actualiser", size="sm", elem_id="tq-refresh")
    return {
        "status": status,
        "priority": priority,
        "category": category,
        "assignee": assignee,
        "breached": breached,
        "sort": sort,
        "refresh": refresh,
    }


def _build_queue() -> dict:
    table = gr.Dataframe(
        headers=fmt.QUEUE_HEADERS,
        datatype=["number", *["str"] * 8],
        interactive=False,
        wrap=True,
        max_height=460,
        label="File des tickets (cliquez sur une ligne pour l'ouvrir)",
        column_widths=["5%", "10%", "8%", "13%", "10%", "12%", "26%", "8%", "8%"],
        elem_id="tq-table",
    )
    with gr.Row(equal_height=True):
        prev = gr.Button("◀ Précédent", size="sm", elem_id="tq-prev", scale=0, min_width=120)
        info = gr.Markdown(elem_id="tq-page")
        nxt = gr.Button("Suivant ▶", size="sm", elem_id="tq-next", scale=0, min_width=120)
    return {"table": table, "prev": prev, "info": info, "next": nxt}


def _build_actions() -> dict:
    take = gr.Button("🙋 Prendre en charge", variant="primary", elem_id="td-take")
    with gr.Group():
        assignee = gr.Dropdown([], label="Assigner à", elem_id="td-assignee")
        assign = gr.Button("Assigner", size="sm", elem_id="td-assign")
    with gr.Group():
        status = gr.Dropdown(
            [(v, k.value) for k, v in STATUS_LABELS.items()], label="Changer le statut", elem_id="td-status"
        )
        apply = gr.Button("Appliquer", size="sm", elem_id="td-apply")
    with gr.Accordion("📝 Note interne", open=False):
        note = gr.Textbox(label="Note (visible des conseillers seulement)", lines=2, elem_id="td-note")
        add_note = gr.Button("Ajouter la note", size="sm", elem_id="td-add-note")
    return {
        "take": take,
        "assignee": assignee,
        "assign": assign,
        "status": status,
        "apply": apply,
        "note": note,
        "add_note": add_note,
    }


def _build_detail() -> dict:
    with gr.Column(visible=False, elem_id="ticket-detail") as box:
        header = gr.Markdown(elem_id="td-header")
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(label="Conversation avec le client", height=420, elem_id="td-chat")
                canned = gr.Dropdown(
                    [(r.title, r.key) for r in CANNED_REPLIES],
                    label="Réponse type",
                    elem_id="td-canned",
                    info="Remplit la zone de réponse, modifiable avant envoi.",
                )
                reply = gr.Textbox(label="Réponse au client", lines=4, elem_id="td-reply")
                with gr.Row():
                    send = gr.Button("📨 Envoyer au client", variant="primary", elem_id="td-send")
                    release = gr.Button("🤖 Rendre la main au bot", elem_id="td-release")
            with gr.Column(scale=2):
                customer = gr.Markdown(elem_id="td-customer")
                actions = _build_actions()
                with gr.Accordion("🕑 Historique du ticket", open=True):
                    events = gr.Markdown(elem_id="td-events")
    return {
        "box": box,
        "header": header,
        "chat": chat,
        "canned": canned,
        "reply": reply,
        "send": send,
        "release": release,
        "customer": customer,
        "events": events,
        **actions,
    }


def _wire(cb: TicketsConsole, staff: gr.State, f: dict, q: dict, d: dict, state: dict, message, timer) -> None:
    """Connect the events; every handler gets the staff principal as its first input."""
    filters = [f[k] for k in ("status", "priority", "category", "assignee", "breached", "sort")]
    queue_in, queue_out = [staff, *filters, state["page"]], [q["table"], q["info"], state["page"], message]
    detail_out = [
        state["ticket"],
        d["box"],
        d["header"],
        d["customer"],
        d["chat"],
        d["events"],
        d["status"],
        state["first_name"],
        message,
    ]
    tid = state["ticket"]
    refresh = cb.queue
    opts = dict(api_name=False, show_progress="hidden")

    def requeue(event):
        event.then(cb.requeue, queue_in, queue_out, **opts)

    for flt in filters:
        flt.input(lambda: 1, None, state["page"], **opts).then(refresh, queue_in, queue_out, **opts)
    f["refresh"].click(refresh, queue_in, queue_out, api_name=False)
    q["prev"].click(lambda p: max(1, int(p or 1) - 1), state["page"], state["page"], **opts).then(
        refresh, queue_in, queue_out, **opts
    )
    q["next"].click(lambda p: int(p or 1) + 1, state["page"], state["page"], **opts).then(
        refresh, queue_in, queue_out, **opts
    )
    staff.change(
        cb.options, staff, [f["category"], f["assignee"], d["assignee"], timer, state["who"], message], **opts
    ).then(refresh, queue_in, queue_out, **opts)
    timer.tick(cb.requeue, queue_in, queue_out, **opts).then(cb.reload, [staff, tid], detail_out, **opts)
    q["table"].select(cb.select, [staff, q["table"]], detail_out, **opts)
    requeue(d["take"].click(cb.take, [staff, tid], detail_out, **opts))
    requeue(d["assign"].click(cb.assign, [staff, tid, d["assignee"]], detail_out, **opts))
    requeue(d["apply"].click(cb.set_status, [staff, tid, d["status"]], detail_out, **opts))
    requeue(d["release"].click(cb.release, [staff, tid], detail_out, **opts))
    d["add_note"].click(cb.note, [staff, tid, d["note"]], [*detail_out[:-1], d["note"], message], **opts)
    requeue(d["send"].click(cb.reply, [staff, tid, d["reply"]], [*detail_out[:-1], d["reply"], message], **opts))
    d["canned"].input(cb.canned, [staff, d["canned"], state["first_name"]], [d["reply"], message], **opts)


def create_tickets_tab(services, staff: gr.State) -> dict[str, gr.Component]:
    """Build the agent console inside the current Blocks context."""
    cb = TicketsConsole(services)
    state = {"page": gr.State(1), "ticket": gr.State(None), "first_name": gr.State(None)}
    with gr.Row(equal_height=True):
        gr.Markdown("## 🎫 File des tickets")
        state["who"] = gr.Markdown(elem_id="tq-who")
    f = _build_filters()
    q = _build_queue()
    message = gr.Markdown(elem_id="tickets-message")
    d = _build_detail()
    timer = gr.Timer(REFRESH_S, active=False)
    _wire(cb, staff, f, q, d, state, message, timer)
    return {"table": q["table"], "detail": d["box"], "message": message, "timer": timer, **f}
