"""`python -m tickets.demo`: refuses the app's database and non-empty ones, writes consistent data."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from storage import Database
from storage.models import Conversation, Customer, Feedback, Message, Ticket
from tickets.analytics import AnalyticsService
from tickets.demo import DemoConfig, generate, main


def _count(db: Database, model) -> int:
    with db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model.__table__)).scalar_one()


def test_refuses_the_app_database(tmp_path: Path, monkeypatch, capsys):
    app_db = tmp_path / "app.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{app_db}")
    assert main(["--db", f"sqlite:///{tmp_path}/../{tmp_path.name}/app.db", "--days", "1"]) == 2
    assert "app's database" in capsys.readouterr().err
    assert not app_db.exists()  # nothing was even migrated


def test_refuses_the_built_in_default_database(capsys):
    from settings import Settings

    default = Settings.model_fields["database_url"].default
    assert main(["--db", default, "--days", "1", "--conversations", "1"]) == 2
    assert "app's database" in capsys.readouterr().err


def test_refuses_a_non_empty_database_unless_append(tmp_path: Path, capsys):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    assert main(["--db", url, "--days", "2", "--conversations", "20"]) == 0
    assert main(["--db", url, "--days", "2", "--conversations", "20"]) == 2
    assert "--append" in capsys.readouterr().err
    assert main(["--db", url, "--days", "2", "--conversations", "20", "--append", "--seed", "7"]) == 0
    db = Database(url)
    assert _count(db, Conversation) == 40
    db.dispose()


@pytest.fixture
def demo_db(db):
    counts = generate(db, DemoConfig(days=3, conversations=200, seed=42))
    assert counts["conversations"] == 200
    return db


def test_demo_data_is_consistent(demo_db):
    db = demo_db
    with db.engine.connect() as conn:
        t, c = Ticket.__table__.c, Conversation.__table__.c
        orphans = conn.execute(select(func.count()).where(t.conversation_id.not_in(select(c.id)))).scalar_one()
        assert orphans == 0  # every ticket belongs to a conversation
        assert conn.execute(select(func.count()).where(t.conversation_id.is_(None))).scalar_one() == 0
        bad_csat = conn.execute(
            select(func.count()).where(
                t.csat.is_not(None), (t.status.not_in(("RESOLVED", "CLOSED"))) | t.resolved_at.is_(None)
            )
        ).scalar_one()
        assert bad_csat == 0  # CSAT only on resolved tickets
        assert conn.execute(select(func.count()).where(t.resolved_at < t.created_at)).scalar_one() == 0
        roles = (
            conn.execute(select(Message.__table__.c.role).join_from(Feedback.__table__, Message.__table__))
            .scalars()
            .all()
        )
        assert set(roles) <= {"assistant"}  # feedback is on bot answers
        phones = conn.execute(select(Customer.__table__.c.phone)).scalars().all()
        assert phones and all(re.fullmatch(r"\+3360000\d{4}", p) for p in phones)
        first, last = conn.execute(select(func.min(c.created_at), func.max(c.created_at))).one()
        assert first < last
    assert _count(db, Ticket) > 0 and _count(db, Feedback) > 0


def test_demo_feeds_the_analytics(demo_db):
    from storage.models import utcnow

    now = utcnow()
    report = AnalyticsService(demo_db).report(now - timedelta(days=4), now + timedelta(minutes=1))
    k = report.kpis
    assert k.conversations == 200
    assert 0 < k.escalation_rate < 0.5 and 0.5 < k.auto_resolution_rate < 1
    assert 300 < k.latency_p50_ms < 3000
    assert k.tickets == _count(demo_db, Ticket)
