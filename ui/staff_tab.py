"""Staff login tab: opens the staff tabs allowed by the account's role (checked again server-side).

Login attempts count in the shared limiter (per client address and per account) before the
password is checked; a session left idle longer than MOBILIA_STAFF_IDLE_MINUTES is logged out.
"""

from __future__ import annotations

import gradio as gr

from guard import RateLimited, client_address
from tickets.users import StaffPrincipal

ROLE_LABELS = {"agent": "conseiller", "trainer": "formateur", "evaluator": "évaluateur", "admin": "administrateur"}
WRONG_CREDENTIALS = "⚠️ Identifiant ou mot de passe incorrect."
IDLE_CHECK_S = 30


class StaffCallbacks:
    """Login, logout and the idle check; each returns (principal, login box, session box, who, message,
    password, idle timer, *one visibility per staff area)."""

    def __init__(self, services, areas: list[str]) -> None:
        self.services = services
        self.areas = areas

    def _outputs(self, principal: StaffPrincipal | None, who: str, message: str) -> tuple:
        logged_in = principal is not None
        visible = [gr.update(visible=logged_in and principal.can(area)) for area in self.areas]
        return (principal, gr.update(visible=not logged_in), gr.update(visible=logged_in), who, message, "",
                gr.Timer(active=logged_in), *visible)  # fmt: skip

    def login(self, user: str, pwd: str, request: gr.Request = None) -> tuple:
        """Check the limits, then the password; a success opens a session that carries its last activity."""
        services = self.services
        try:
            services.limits.login(client_address(request, services.settings.trusted_proxies), user)
        except RateLimited as exc:
            return self._outputs(None, "", f"🔒 {exc.detail}")
        principal = services.staff.authenticate(user, pwd)
        if principal is None:
            return self._outputs(None, "", WRONG_CREDENTIALS)
        principal = services.staff.open_session(principal)
        label = ROLE_LABELS.get(principal.role, principal.role)
        return self._outputs(principal, f"Connecté en tant que **{principal.username}** ({label}).", "")

    def logout(self) -> tuple:
        return self._outputs(None, "", "Vous êtes déconnecté.")

    def check_idle(self, principal: StaffPrincipal | None) -> tuple:
        """Timer tick (not an activity): log out a session idle longer than allowed, else change nothing."""
        staff = self.services.staff
        if principal is None or not staff.expired(principal):
            return tuple(gr.skip() for _ in range(7 + len(self.areas)))
        return self._outputs(None, "", f"🔒 Session expirée après {staff.idle_minutes:g} minutes d'inactivité : "
                                       "reconnectez-vous.")  # fmt: skip


def create_staff_tab(services, staff: gr.State, areas: list[tuple[str, gr.Tab]]) -> dict[str, gr.Component]:
    """Login / logout form; `areas` pairs each staff tab with the area name its role check uses."""
    cb = StaffCallbacks(services, [area for area, _ in areas])
    with gr.Column(elem_id="staff-login") as login_box:
        gr.Markdown("### Espace conseillers\nConnectez-vous avec votre compte pour accéder aux outils internes.")
        username = gr.Textbox(label="Identifiant", elem_id="staff-username", max_lines=1)
        password = gr.Textbox(label="Mot de passe", type="password", elem_id="staff-password", max_lines=1)
        login = gr.Button("Se connecter", variant="primary", elem_id="staff-login-btn")
    with gr.Column(visible=False, elem_id="staff-session") as session_box:
        who = gr.Markdown(elem_id="staff-who")
        logout = gr.Button("Se déconnecter", elem_id="staff-logout")
    message = gr.Markdown(elem_id="staff-message")
    idle = gr.Timer(IDLE_CHECK_S, active=False)  # runs only while logged in
    outputs = [staff, login_box, session_box, who, message, password, idle, *[tab for _, tab in areas]]
    login.click(cb.login, [username, password], outputs, api_name=False)
    password.submit(cb.login, [username, password], outputs, api_name=False)
    logout.click(cb.logout, None, outputs, api_name=False)
    idle.tick(cb.check_idle, staff, outputs, api_name=False, show_progress="hidden")
    return {"login": login, "logout": logout, "message": message}
