"""Staff accounts: creation rules, authentication, role areas, require() and the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from settings import ROOT
from storage import Database
from tickets.users import AREA_ROLES, AccessDenied, StaffPrincipal, StaffService, require

PASSWORD = "correct-horse-42"


@pytest.fixture
def staff(db) -> StaffService:
    return StaffService(db)


def test_create_and_authenticate(staff) -> None:
    created = staff.create_user("  Paul.Martin ", PASSWORD, "agent")
    assert (created.username, created.role) == ("paul.martin", "agent")

    assert staff.authenticate("PAUL.MARTIN", PASSWORD) == created
    assert staff.authenticate("paul.martin", "wrong-password-1") is None
    assert staff.authenticate("nobody", PASSWORD) is None
    assert staff.authenticate("", "") is None
    assert [u.username for u in staff.list_users()] == ["paul.martin"]


def test_password_is_stored_hashed(db, staff) -> None:
    staff.create_user("paul", PASSWORD, "agent")
    with db.engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT password_hash FROM staff_users").scalar_one()
    assert PASSWORD not in stored and stored.startswith("$argon2")


def test_deactivated_account_cannot_log_in_and_loses_its_session(staff) -> None:
    principal = staff.create_user("lea", PASSWORD, "agent")
    assert staff.current(principal) == principal
    assert staff.deactivate("lea") is True
    assert staff.authenticate("lea", PASSWORD) is None
    assert staff.current(principal) is None
    assert staff.deactivate("ghost") is False
    assert staff.list_users() == []


@pytest.mark.parametrize(
    ("username", "password", "role", "error"),
    [
        ("paul", "short", "agent", "at least 10"),
        ("paul", PASSWORD, "boss", "role must be one of"),
        ("x", PASSWORD, "agent", "username"),
        ("bad name", PASSWORD, "agent", "username"),
    ],
)
def test_invalid_accounts_are_refused(staff, username, password, role, error) -> None:
    with pytest.raises(ValueError, match=error):
        staff.create_user(username, password, role)
    assert staff.list_users() == []


def test_duplicate_username_is_refused(staff) -> None:
    staff.create_user("paul", PASSWORD, "agent")
    with pytest.raises(ValueError, match="already exists"):
        staff.create_user("PAUL", PASSWORD + "x", "trainer")


def test_role_areas_and_require() -> None:
    agent = StaffPrincipal(1, "paul", "agent")
    trainer = StaffPrincipal(2, "tom", "trainer")
    admin = StaffPrincipal(3, "root", "admin")
    assert agent.can("tickets") and agent.can("social") and agent.can("analytics")
    assert not agent.can("training") and not agent.can("admin")
    assert trainer.can("training") and not trainer.can("tickets")
    evaluator = StaffPrincipal(4, "eve", "evaluator")
    assert evaluator.can("evaluation") and not any(evaluator.can(a) for a in ("training", "tickets", "admin"))
    assert all(admin.can(area) for area in AREA_ROLES)
    assert not admin.can("unknown-area")

    assert require(agent, "tickets") is agent
    with pytest.raises(AccessDenied, match="Connectez-vous"):
        require(None, "tickets")
    with pytest.raises(AccessDenied, match="rôle ne donne pas accès"):
        require(trainer, "tickets")
    assert issubclass(AccessDenied, PermissionError)


def test_evaluator_accounts_are_stored(db, staff) -> None:
    evaluator = staff.create_user("eve", PASSWORD, "evaluator")
    assert staff.current(evaluator).role == "evaluator" and staff.authenticate("eve", PASSWORD) is not None


def test_role_change_takes_effect_through_current(db, staff) -> None:
    principal = staff.create_user("paul", PASSWORD, "agent")
    with db.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE staff_users SET role = 'trainer' WHERE username = 'paul'")
    with pytest.raises(AccessDenied):
        require(staff.current(principal), "tickets")


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tickets.users", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_cli_create_list_and_deactivate(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    created = run_cli("--db", url, "create", "--username", "x.agent", "--role", "agent", stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    assert "created x.agent (agent)" in created.stdout
    assert PASSWORD not in created.stdout + created.stderr

    db = Database(url)
    try:
        assert StaffService(db).authenticate("x.agent", PASSWORD) is not None
    finally:
        db.dispose()

    duplicate = run_cli("--db", url, "create", "--username", "x.agent", "--role", "agent", stdin=PASSWORD + "\n")
    assert duplicate.returncode == 2 and "already exists" in duplicate.stderr
    weak = run_cli("--db", url, "create", "--username", "weak.one", "--role", "agent", stdin="short\n")
    assert weak.returncode == 2 and "at least 10" in weak.stderr
    assert run_cli("--db", url, "list").stdout.split() == ["x.agent", "agent"]
    assert run_cli("--db", url, "deactivate", "--username", "x.agent").returncode == 0
    assert run_cli("--db", url, "deactivate", "--username", "x.agent.gone").returncode == 1


class FakeClock:
    """An injectable monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ui_session_expires_after_the_idle_time_and_stays_expired(db) -> None:
    from tickets.users import SessionExpired

    clock = FakeClock()
    staff = StaffService(db, idle_minutes=30, clock=clock)
    staff.create_user("lea", PASSWORD, "agent")
    session = staff.open_session(staff.authenticate("lea", PASSWORD))

    clock.now += 29 * 60
    assert staff.current(session).username == "lea"  # an activity: the idle time starts again
    clock.now += 29 * 60
    assert not staff.expired(session) and require(staff.current(session), "tickets").role == "agent"
    clock.now += 30 * 60 + 1
    assert staff.expired(session)
    with pytest.raises(SessionExpired, match="Session expirée après 30 minutes d'inactivité"):
        require(staff.current(session), "tickets")
    clock.now += 1
    with pytest.raises(AccessDenied):  # no coming back: a new login is needed
        staff.current(session)
    assert staff.current(staff.open_session(staff.authenticate("lea", PASSWORD))).username == "lea"


def test_api_token_principals_have_no_idle_expiry(db) -> None:
    clock = FakeClock()
    staff = StaffService(db, idle_minutes=1, clock=clock)
    principal = staff.create_user("tom", PASSWORD, "trainer")  # as decoded from a bearer token: no activity
    clock.now += 24 * 3600
    assert staff.current(principal) == principal
