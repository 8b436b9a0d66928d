"""Staff login tab: opens the staff tabs allowed by the account's role (checked again server-side)."""

from __future__ import annotations

import gradio as gr

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
    tabs = [tab for _, tab in areas]

    def visible_tabs(principal: StaffPrincipal | None) -> list:
        return [gr.update(visible=principal is not None and principal.can(area)) for area, _ in areas]

    def do_login(user: str, pwd: str):
        principal = services.staff.authenticate(user, pwd)
        if principal is None:
            return (None, gr.update(), gr.update(), "", "⚠️ Identifiant ou mot de passe incorrect.", "",
                    *visible_tabs(None))
        label = ROLE_LABELS.get(principal.role, principal.role)
        return (principal, gr.update(visible=False), gr.update(visible=True),
                f"Connecté en tant que **{principal.username}** ({label}).", "", "", *visible_tabs(principal))

    def do_logout():
        return (None, gr.update(visible=True), gr.update(visible=False), "", "Vous êtes déconnecté.", "",
                *visible_tabs(None))

    outputs = [staff, login_box, session_box, who, message, password, *tabs]
    login.click(do_login, [username, password], outputs, api_name=False)
    password.submit(do_login, [username, password], outputs, api_name=False)
    logout.click(do_logout, None, outputs, api_name=False)
    return {"login": login, "logout": logout, "message": message}
