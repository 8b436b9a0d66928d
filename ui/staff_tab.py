"""Staff login tab: opens the staff tabs allowed by the account's role (checked again server-side)."""

from __future__ import annotations

import gradio as gr

from guard import RateLimited, client_address
from tickets.users import StaffPrincipal

ROLE_LABELS = {"agent": "conseiller", "trainer": "formateur", "evaluator": "évaluateur", "admin": "administrateur"}


def create_staff_tab(services, staff: gr.State, areas: list[tuple[str, gr.Tab]]) -> dict[str, gr.Component]:
    """Login / logout form; `areas` pairs each staff tab with the area name its role check uses."""
    with gr.Column(elem_id="staff-login") as login_box:
        gr.Markdown("### Espace conseillers\nConnectez-vous avec votre compte pour accéder aux outils internes.")
        username = gr.Textbox(label="Identifiant", elem_id="staff-username", max_lines=1)
        password = gr.Textbox(label="Mot de passe", type="password", elem_id="staff-password", max_lines=1)
        login = gr.Button("Se connecter", variant="primary", elem_id="staff-login-btn")
    with gr.Column(visible=False, elem_id="staff-session") as session_box:
        who = gr.Markdown(elem_id="staff-who")
        logout = gr.Button("Se déconnecter", elem_id="staff-logout")
    message = gr.Markdown(elem_id="staff-message")
    idle = gr.Timer(30, active=False)  # while logged in: ends a session left idle (MOBILIA_STAFF_IDLE_MINUTES)
    tabs = [tab for _, tab in areas]

    def visible_tabs(principal: StaffPrincipal | None) -> list:
        return [gr.update(visible=principal is not None and principal.can(area)) for area, _ in areas]

    def do_login(user: str, pwd: str, request: gr.Request):
        try:  # per client address and per account, before the password is even checked
            services.limits.login(client_address(request, services.settings.trusted_proxies), user)
        except RateLimited as exc:
            return (None, gr.update(), gr.update(), "", f"🔒 {exc.detail}", "", gr.Timer(active=False),
                    *visible_tabs(None))
        principal = services.staff.authenticate(user, pwd)
        if principal is None:
            return (None, gr.update(), gr.update(), "", "⚠️ Identifiant ou mot de passe incorrect.", "",
                    gr.Timer(active=False), *visible_tabs(None))
        principal = services.staff.open_session(principal)  # carries its last activity (idle expiry)
        label = ROLE_LABELS.get(principal.role, principal.role)
        return (principal, gr.update(visible=False), gr.update(visible=True),
                f"Connecté en tant que **{principal.username}** ({label}).", "", "", gr.Timer(active=True),
                *visible_tabs(principal))

    def do_logout(note: str = "Vous êtes déconnecté."):
        return (None, gr.update(visible=True), gr.update(visible=False), "", note, "", gr.Timer(active=False),
                *visible_tabs(None))

    def check_idle(principal: StaffPrincipal | None):
        """Timer tick (not an activity): log out a session idle longer than allowed."""
        if principal is None or not services.staff.expired(principal):
            return tuple(gr.skip() for _ in outputs)
        return do_logout(f"🔒 Session expirée après {services.staff.idle_minutes:g} minutes d'inactivité : "
                         "reconnectez-vous.")

    outputs = [staff, login_box, session_box, who, message, password, idle, *tabs]
    login.click(do_login, [username, password], outputs, api_name=False)
    password.submit(do_login, [username, password], outputs, api_name=False)
    logout.click(lambda: do_logout(), None, outputs, api_name=False)
    idle.tick(check_idle, staff, outputs, api_name=False, show_progress="hidden")
    return {"login": login, "logout": logout, "message": message}
