"""Staff login tab: lock-out through the shared limiter and logout of an idle session (issue 12, findings 3, 9)."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from guard import RateLimits
from guard.ratelimit import LOCKED_OUT, Limit
from tickets.users import SessionExpired, StaffService, require
from ui.staff_tab import WRONG_CREDENTIALS, StaffCallbacks

PASSWORD = "correct-horse-42"
AREAS = ["tickets", "analytics", "training"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def request_from(host: str) -> SimpleNamespace:
    """What the callbacks read of a gr.Request: the peer and the headers."""
    return SimpleNamespace(client=SimpleNamespace(host=host), headers={"x-forwarded-for": "203.0.113.1"})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def callbacks(db, clock) -> StaffCallbacks:
    staff = StaffService(db, idle_minutes=30, clock=clock)
    staff.create_user("lea", PASSWORD, "agent")
    limits = RateLimits({"login": Limit("3/minute", LOCKED_OUT), "login_account": Limit("5/minute", LOCKED_OUT)})
    services = SimpleNamespace(staff=staff, limits=limits, settings=SimpleNamespace(trusted_proxies=[]))
    return StaffCallbacks(services, AREAS)


def test_wrong_passwords_lock_the_client_out_even_for_the_right_password(callbacks) -> None:
    messages = [callbacks.login("lea", "wrong-password", request_from("127.0.0.1"))[4] for _ in range(3)]
    assert messages == [WRONG_CREDENTIALS] * 3
    principal, _, _, who, message, *_ = callbacks.login("lea", PASSWORD, request_from("127.0.0.1"))
    assert principal is None and who == ""
    assert message == "🔒 Trop de tentatives de connexion… réessayez dans 1 minute."
    # Another address (the forwarded header is not believed: no trusted proxy) may still log in.
    assert callbacks.login("lea", PASSWORD, request_from("10.1.2.3"))[0].username == "lea"


def test_an_idle_session_is_logged_out_by_the_timer_and_refused_by_every_tab(callbacks, clock) -> None:
    principal, *_, timer = callbacks.login("lea", PASSWORD, request_from("127.0.0.1"))[:7]
    assert principal.username == "lea" and timer.active is True
    clock.now += 20 * 60
    assert all(isinstance(out, type(gr.skip())) for out in callbacks.check_idle(principal))  # not idle yet
    require(callbacks.services.staff.current(principal), "tickets")  # a staff action: activity
    clock.now += 29 * 60
    assert all(isinstance(out, type(gr.skip())) for out in callbacks.check_idle(principal))
    clock.now += 2 * 60

    state, login_box, session_box, who, message, _, timer, *tabs = callbacks.check_idle(principal)

    assert state is None and login_box["visible"] is True and session_box["visible"] is False and who == ""
    assert message == "🔒 Session expirée après 30 minutes d'inactivité : reconnectez-vous."
    assert timer.active is False and [t["visible"] for t in tabs] == [False] * len(AREAS)
    with pytest.raises(SessionExpired, match="Session expirée"):  # a tab still holding it is refused
        require(callbacks.services.staff.current(principal), "tickets")
