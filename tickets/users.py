"""Staff accounts (agent, trainer, admin): argon2 password hashes and server-side role checks.

    python -m tickets.users create --username alice --role agent     # password from stdin or a prompt
    python -m tickets.users list
    python -m tickets.users deactivate --username alice
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import getpass
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from storage import Database
from storage.models import StaffUser

ROLES = ("agent", "trainer", "evaluator", "admin")
# Which roles may use each staff area; admin may use all of them.
AREA_ROLES = {
    "tickets": ("agent", "admin"),
    "social": ("agent", "admin"),
    "analytics": ("agent", "trainer", "admin"),
    "training": ("trainer", "admin"),
    "evaluation": ("trainer", "evaluator", "admin"),
    "admin": ("admin",),
    "knowledge": ("trainer", "admin"),  # KB editor, test bench, gaps, gated publication (rag/kb.py, rag/publish.py)
    "datasets": ("trainer", "admin"),  # review queue and SFT dataset build (training/review.py, training/data.py)
    "promotion": ("admin",),  # which model answers in the live chat (others propose)
    "models": ROLES,  # details of the models' status (paths, errors)
}
MIN_PASSWORD_LENGTH = 10
_USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash verified for unknown users (same timing as a real check); made on first login, not at import."""
    return _hasher.hash("timing-equaliser-not-a-password")


class AccessDenied(PermissionError):
    """A staff action refused server-side; the message is French, for the UI."""


class SessionExpired(AccessDenied):
    """A staff UI session left idle longer than allowed: the user must log in again."""


@dataclass
class Activity:
    """Last use of one staff UI session (shared by every copy of its principal; monotonic seconds)."""

    last: float
    expired: bool = False


@dataclass(frozen=True)
class StaffPrincipal:
    """Who is logged in; kept in server-side gr.State (or a verified token), never trusted from the client.

    A UI login also carries its session's ``activity`` (None for API tokens, which have their own expiry).
    """

    user_id: int
    username: str
    role: str
    activity: Activity | None = dataclasses.field(default=None, compare=False, repr=False)

    def can(self, area: str) -> bool:
        """True when this role may use the given staff area."""
        return self.role in AREA_ROLES.get(area, ())


def require(principal: StaffPrincipal | None, area: str) -> StaffPrincipal:
    """Return the principal if it may use `area`, else raise AccessDenied (checked in every callback)."""
    if principal is None:
        raise AccessDenied("Connectez-vous avec un compte conseiller pour accéder à cet espace.")
    if not principal.can(area):
        raise AccessDenied("Votre rôle ne donne pas accès à cet espace.")
    return principal


class StaffService:
    """Create, authenticate and manage staff accounts."""

    def __init__(self, db: Database, idle_minutes: float = 30, clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.idle_minutes = idle_minutes
        self._clock = clock

    def create_user(self, username: str, password: str, role: str) -> StaffPrincipal:
        """Create an active account; raises ValueError on a bad name, weak password, unknown role or duplicate."""
        username = username.strip().lower()
        if not _USERNAME_RE.match(username):
            raise ValueError("username: 2-63 characters, lowercase letters, digits, '.', '_' or '-'")
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ValueError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
        with self.db.session() as s:
            if s.scalar(select(StaffUser.id).where(StaffUser.username == username)) is not None:
                raise ValueError(f"user {username!r} already exists")
            user = StaffUser(username=username, password_hash=_hasher.hash(password), role=role, active=True)
            s.add(user)
            s.flush()
            return StaffPrincipal(user.id, user.username, user.role)

    def authenticate(self, username: str, password: str) -> StaffPrincipal | None:
        """The principal for valid credentials of an active account, else None (same cost either way)."""
        with self.db.session() as s:
            user = s.scalar(select(StaffUser).where(StaffUser.username == (username or "").strip().lower()))
            stored = user.password_hash if user is not None and user.active else _dummy_hash()
            try:
                _hasher.verify(stored, password or "")
            except (VerificationError, InvalidHashError):
                return None
            if user is None or not user.active:
                return None
            if _hasher.check_needs_rehash(user.password_hash):
                user.password_hash = _hasher.hash(password)
            return StaffPrincipal(user.id, user.username, user.role)

    def open_session(self, principal: StaffPrincipal) -> StaffPrincipal:
        """The principal of a new UI session: it carries its last activity, checked by ``current``."""
        return dataclasses.replace(principal, activity=Activity(self._clock()))

    def expired(self, principal: StaffPrincipal | None) -> bool:
        """True when this UI session has been idle too long (checked without counting as activity)."""
        activity = principal.activity if principal is not None else None
        if activity is not None and not activity.expired:
            activity.expired = self._clock() - activity.last > self.idle_minutes * 60
        return activity is not None and activity.expired

    def current(self, principal: StaffPrincipal | None) -> StaffPrincipal | None:
        """Re-read the account so a deactivated user or a changed role takes effect at once.

        A UI session idle for more than ``idle_minutes`` raises SessionExpired (and stays expired);
        otherwise this call counts as activity.
        """
        if principal is None:
            return None
        if self.expired(principal):
            raise SessionExpired(
                f"Session expirée après {self.idle_minutes:g} minutes d'inactivité : "
                "reconnectez-vous dans l'onglet « Espace conseillers »."
            )
        with self.db.read() as s:
            user = s.get(StaffUser, principal.user_id)
            if user is None or not user.active:
                return None
            if principal.activity is not None:
                principal.activity.last = self._clock()
            return StaffPrincipal(user.id, user.username, user.role, principal.activity)

    def list_users(self) -> list[StaffPrincipal]:
        """All active accounts, by username."""
        with self.db.read() as s:
            rows = s.scalars(select(StaffUser).where(StaffUser.active.is_(True)).order_by(StaffUser.username))
            return [StaffPrincipal(u.id, u.username, u.role) for u in rows]

    def deactivate(self, username: str) -> bool:
        """Disable an account (kept for the audit trail); False if it does not exist."""
        with self.db.session() as s:
            user = s.scalar(select(StaffUser).where(StaffUser.username == username.strip().lower()))
            if user is None:
                return False
            user.active = False
            return True


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m tickets.users`."""
    parser = argparse.ArgumentParser(prog="python -m tickets.users", description="Manage staff accounts")
    parser.add_argument("--db", help="database URL (default: settings / DATABASE_URL)")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create an account (password read from stdin or a prompt)")
    create.add_argument("--username", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    sub.add_parser("list", help="list active accounts")
    deactivate = sub.add_parser("deactivate", help="disable an account")
    deactivate.add_argument("--username", required=True)
    return parser


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise ValueError("passwords do not match")
    return first


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = make_parser().parse_args(argv)
    from settings import get_settings

    db = Database(args.db or get_settings().database_url)
    db.migrate()
    service = StaffService(db)
    try:
        if args.command == "create":
            user = service.create_user(args.username, _read_password(), args.role)
            print(f"created {user.username} ({user.role})")
        elif args.command == "list":
            for user in service.list_users():
                print(f"{user.username}\t{user.role}")
        elif not service.deactivate(args.username):
            print(f"error: no user {args.username!r}", file=sys.stderr)
            return 1
        else:
            print(f"deactivated {args.username}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
