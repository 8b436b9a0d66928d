"""AnalyticsService on a small hand-built history whose every number is checked by hand."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy.dialects import postgresql

from storage.models import Conversation, Customer, Feedback, MastodonPost, Message, Ticket
from tickets.analytics import EXPORTS, AnalyticsService, Period, day_bucket, hour_bucket, period_from_dates
from tickets.redact import redact


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


START, END = at(10, 0), at(12, 0)  # two days: 10 and 11 March; previous period: 8 and 9 March
NOW = at(12, 15)  # clock of the service: ticket T3 (due 12 March 22:01) is not late yet, T4 is
PERSONAL = (
    "Je m'appelle Alice Martin, mon 06 12 34 56 78, alice.martin@example.org, IBAN FR76 3000 6000 0112 3456 7890 189"
)


def _conversation(
    s, cid: str, when: datetime, turns: list[tuple[int, str]], customer_id: int | None = None
) -> list[int]:
    """A conversation with one (user, assistant) pair per turn (latency_ms, intent); returns assistant ids."""
    s.add(Conversation(id=cid, customer_id=customer_id, created_at=when, updated_at=when))
    s.flush()
    ids = []
    for i, (latency, intent) in enumerate(turns):
        t = when + timedelta(minutes=5 * i)
        s.add(Message(conversation_id=cid, role="user", content=PERSONAL if cid == "c1" else "Bonjour", created_at=t))
        msg = Message(
            conversation_id=cid,
            role="assistant",
            content="Réponse",
            created_at=t + timedelta(seconds=1),
            meta={"intent": intent, "confidence": 0.8, "needs_escalation": False, "latency_ms": latency},
        )
        s.add(msg)
        s.flush()
        ids.append(msg.id)
    return ids


def _ticket(
    s,
    cid: str | None,
    created: datetime,
    hours: int,
    status: str,
    resolved: datetime | None = None,
    csat: int | None = None,
) -> None:
    s.add(
        Ticket(
            conversation_id=cid,
            category="technique",
            priority="HIGH",
            status=status,
            summary=PERSONAL,
            created_at=created,
            updated_at=created,
            sla_due_at=created + timedelta(hours=hours),
            resolved_at=resolved,
            csat=csat,
        )
    )


def _post(s, sid: str, when: datetime, complaint: bool) -> None:
    s.add(
        MastodonPost(
            status_id=sid,
            account="bob@mastodon.example",
            url=f"https://m.example/{sid}",
            content=PERSONAL,
            created_at=when,
            is_complaint=complaint,
        )
    )


@pytest.fixture
def history(db):
    """Five conversations and four tickets in [START, END), one conversation in the previous period."""
    with db.session() as s:
        customer = Customer(full_name="Alice Martin", phone="+33612345678", email="alice.martin@example.org")
        s.add(customer)
        s.flush()
        # Previous period (9 March): 1 conversation, bot answered in 800 ms, no ticket; 1 complaint on 8 March.
        _conversation(s, "c0", at(9, 12), [(800, "forfait")])
        _post(s, "p0", at(8, 10), True)
        # Current period.
        _conversation(s, "c1", at(10, 9), [(100, "facturation")], customer.id)  # auto-resolved
        (c2_answer,) = _conversation(s, "c2", at(10, 14, 30), [(200, "technique")])
        s.add(Feedback(message_id=c2_answer, conversation_id="c2", rating=-1, created_at=at(10, 15)))  # not auto
        _conversation(s, "c3", at(11, 9, 15), [(300, "technique")])
        _conversation(s, "c4", at(11, 20), [(400, "réclamation"), (1000, "réclamation")])  # user msgs 20:00, 20:05
        _conversation(s, "c5", at(11, 22), [(500, "résiliation")])
        _conversation(s, "c6", at(12, 0), [(9000, "général")])  # starts exactly at END: excluded
        _ticket(s, "c3", at(11, 9, 16), 4, "RESOLVED", at(11, 11, 16), csat=5)  # T1 met
        _ticket(s, "c4", at(11, 20, 6), 1, "CLOSED", at(11, 23), csat=2)  # T2 resolved late: missed
        _ticket(s, "c5", at(11, 22, 1), 24, "OPEN")  # T3 open, due 12 March 22:01 > NOW: pending
        _ticket(s, None, at(10, 10), 48, "IN_PROGRESS")  # T4 due 12 March 10:00 < NOW: missed
        _post(s, "p1", at(10, 8), True)
        _post(s, "p2", at(11, 8), True)
        _post(s, "p3", at(11, 9), True)
        _post(s, "p4", at(11, 10), False)
    return db


@pytest.fixture
def service(history) -> AnalyticsService:
    return AnalyticsService(history, clock=lambda: NOW)


def test_kpis_of_the_period(service):
    k = service.report(START, END).kpis
    assert k.conversations == 5  # c1..c5 (c0 is before, c6 starts at END)
    assert k.escalation_rate == pytest.approx(3 / 5)  # c3, c4, c5 have a ticket
    assert k.auto_resolution_rate == pytest.approx(1 / 5)  # c1 only: c2 got a thumbs down
    assert k.tickets == 4
    assert k.csat_avg == pytest.approx(3.5)  # (5 + 2) / 2
    assert k.csat_satisfied == pytest.approx(0.5)  # one 4-5 rating out of 2
    assert k.csat_count == 2
    # latencies 100, 200, 300, 400, 500, 1000: p50 = (300 + 400) / 2; p95 at rank 0.95 * 5 = 4.75
    assert k.latency_p50_ms == pytest.approx(350)
    assert k.latency_p95_ms == pytest.approx(500 + 0.75 * (1000 - 500))  # 875
    assert k.sla_met_rate == pytest.approx(1 / 3)  # T1 met; T2 late and T4 breached missed; T3 pending
    assert k.complaints == 3  # p1, p2, p3 (p4 is no complaint)


def test_series_of_the_period(service):
    r = service.report(START, END)
    conv = r.conversations_daily.set_index("day")
    assert conv.loc["2026-03-10", ["conversations", "escalated", "auto_resolved"]].tolist() == [2, 0, 1]
    assert conv.loc["2026-03-11", ["conversations", "escalated", "auto_resolved"]].tolist() == [3, 3, 0]
    assert conv.loc["2026-03-11", "escalation_rate"] == pytest.approx(1.0)
    assert r.intents.values.tolist() == [["réclamation", 2], ["technique", 2], ["facturation", 1], ["résiliation", 1]]
    assert dict(r.ticket_status.values.tolist()) == {"OPEN": 1, "IN_PROGRESS": 1, "RESOLVED": 1, "CLOSED": 1}
    hourly = dict(r.hourly.values.tolist())
    assert len(hourly) == 24
    assert {h: n for h, n in hourly.items() if n} == {9: 2, 14: 1, 20: 2, 22: 1}  # user messages only
    assert dict(r.csat.values.tolist()) == {1: 0, 2: 1, 3: 0, 4: 0, 5: 1}
    sla = r.sla_daily.set_index("day")
    assert sla.loc["2026-03-10", ["met", "missed"]].tolist() == [0, 1]  # T4
    assert sla.loc["2026-03-11", ["met", "missed"]].tolist() == [1, 1]  # T1, T2 (T3 pending)
    assert r.complaints_daily.values.tolist() == [["2026-03-10", 1], ["2026-03-11", 2]]
    latency = r.latency_daily.set_index("day")
    assert latency.loc["2026-03-10", "p50_ms"] == pytest.approx(150)  # 100, 200
    assert set(r.timings) >= {"conversations", "answers", "sla", "csat", "hourly", "complaints"}


def test_deltas_vs_previous_period(service):
    r = service.report(START, END)
    p = r.previous
    assert (p.conversations, p.escalation_rate, p.auto_resolution_rate) == (1, 0.0, 1.0)
    assert (p.latency_p50_ms, p.latency_p95_ms, p.complaints, p.tickets) == (800, 800, 1, 0)
    assert p.csat_avg is None and p.sla_met_rate is None
    d = r.deltas
    assert d["conversations"] == 4  # 5 - 1
    assert d["escalation_rate"] == pytest.approx(0.6)  # 3/5 - 0
    assert d["auto_resolution_rate"] == pytest.approx(-0.8)  # 1/5 - 1
    assert d["latency_p50_ms"] == pytest.approx(-450)  # 350 - 800
    assert d["complaints"] == 2  # 3 - 1
    assert d["csat_avg"] is None  # nothing rated before


def test_empty_range_gives_zeros_and_none(service):
    r = service.report(at(1, 0), at(3, 0))
    assert r.kpis.conversations == r.kpis.tickets == r.kpis.complaints == 0
    assert r.kpis.escalation_rate is None and r.kpis.latency_p95_ms is None and r.kpis.sla_met_rate is None
    assert r.conversations_daily["conversations"].tolist() == [0, 0]
    assert r.latency_daily["p50_ms"].isna().all()
    assert r.intents.empty and r.hourly["messages"].sum() == 0
    assert set(r.deltas.values()) <= {0, None}


def test_kpis_alone_match_the_report(service):
    assert service.kpis(START, END) == service.report(START, END).kpis


@pytest.mark.parametrize("table", sorted(EXPORTS))
def test_csv_export_has_no_personal_data(service, tmp_path, table):
    path = service.export_csv(table, at(8, 0), END, out_dir=tmp_path)
    text = path.read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(text.splitlines()))
    assert rows, table
    for secret in ("Alice", "Martin", "06 12 34 56 78", "612345678", "alice.martin", "FR76", "bob@", "m.example"):
        assert secret not in text, (table, secret)
    assert not {"full_name", "phone", "email", "account", "url", "customer_id"} & set(rows[0])


def test_csv_export_of_messages_keeps_redacted_text_and_meta(service, tmp_path):
    path = service.export_csv("messages", START, END, out_dir=tmp_path)
    rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    assert len(rows) == 12  # c1, c2, c3, c5: 2 messages each; c4: 4 (two turns); c6 starts at END
    first = rows[0]
    assert "[téléphone]" in first["content"] and "[email]" in first["content"] and "[iban]" in first["content"]
    assert "[nom]" in first["content"]
    assert {r["intent"] for r in rows if r["role"] == "assistant"} == {
        "facturation",
        "technique",
        "réclamation",
        "résiliation",
    }


def test_export_refuses_unknown_table(service, tmp_path):
    with pytest.raises(ValueError, match="unknown export"):
        service.export_csv("customers", START, END, tmp_path)


def test_csv_exports_contain_no_customer_name(db, tmp_path):
    """Finding 8 of issue 12: names from the customers table and the contact form are masked, not only phones."""
    with db.session() as s:
        customer = Customer(full_name="Alice Martin", phone="+33612345678", email="alice.martin@example.org")
        s.add(customer)
        s.flush()
        s.add(Conversation(id="n1", customer_id=customer.id, contact_name="Mallory Intrus", contact_phone="+33612345678",
                           created_at=at(10, 9), updated_at=at(10, 9)))  # fmt: skip
        s.flush()
        s.add(Message(conversation_id="n1", role="user", content="Bonjour, c'est Mallory, pour ALICE", created_at=at(10, 9)))
        answer = Message(conversation_id="n1", role="assistant", content="Bonjour Mallory Intrus", created_at=at(10, 10))
        s.add(answer)
        s.flush()
        s.add(Feedback(message_id=answer.id, conversation_id="n1", rating=-1, comment="Mallory pas content",
                       created_at=at(10, 11)))  # fmt: skip
        s.add(Ticket(conversation_id="n1", customer_id=customer.id, category="technique", priority="HIGH", status="OPEN",
                     summary="Rappeler Mme Martin (ou Mallory)", resolution_notes="Alice rappelée", created_at=at(10, 12),
                     updated_at=at(10, 12), sla_due_at=at(10, 16)))  # fmt: skip
    service = AnalyticsService(db, clock=lambda: NOW)
    for table in ("messages", "tickets", "feedback"):
        text = service.export_csv(table, START, END, tmp_path).read_text(encoding="utf-8-sig")
        assert "[nom]" in text, table
        for name in ("Alice", "ALICE", "Martin", "Mallory", "Intrus"):
            assert name not in text, (table, name)


def test_export_files_do_not_outlive_their_download(service):
    with service.exported_csv("messages", START, END) as path:
        folder = path.parent
        assert path.is_file() and list(folder.iterdir()) == [path]
        assert folder.name.startswith("mobiliachat-export-") and oct(folder.stat().st_mode & 0o777) == "0o700"
    assert not folder.exists()
    with pytest.raises(ValueError), service.exported_csv("customers", START, END) as path:
        pass


def test_redact_examples():
    assert redact("appelez le +33 6 12 34 56 78 ou 0033612345678") == "appelez le [téléphone] ou [téléphone]"
    assert redact("06.12.34.56.78") == "[téléphone]"
    assert redact("écrivez à jean-luc.dupont+sav@free.fr") == "écrivez à [email]"
    assert redact("FR7630006000011234567890189") == "[iban]"
    assert (
        redact("Je suis très déçu, forfait à 19,99 € depuis 2024") == "Je suis très déçu, forfait à 19,99 € depuis 2024"
    )
    assert redact(None) == ""


def test_period_from_dates_is_inclusive_utc_days():
    p = period_from_dates("2026-03-10", date(2026, 3, 11))
    assert (p.start, p.end) == (START, END)
    assert p.previous() == Period(at(8, 0), START)
    assert p.days() == ["2026-03-10", "2026-03-11"]
    with pytest.raises(ValueError, match="fin doit"):
        period_from_dates("2026-03-11", "2026-03-10")
    with pytest.raises(ValueError, match="invalide"):
        period_from_dates("hier", "2026-03-10")


def test_postgresql_buckets_have_no_bound_parameters():
    # GROUP BY on PostgreSQL must repeat the SELECT expression exactly: constants are literals.
    column = Message.__table__.c.created_at
    for expr in (day_bucket(column, "postgresql"), hour_bucket(column, "postgresql")):
        compiled = expr.compile(dialect=postgresql.dialect())
        assert not compiled.params
    assert "to_char(timezone('UTC', messages.created_at), 'YYYY-MM-DD')" in str(
        day_bucket(column, "postgresql").compile(dialect=postgresql.dialect())
    )


@pytest.mark.slow  # imports Gradio and Plotly, hashes a password
def test_tab_callbacks_check_the_role_server_side(history, tmp_path):
    from tickets.users import StaffService
    from ui.analytics_tab import CHARTS, AnalyticsCallbacks

    staff = StaffService(history)
    user = staff.create_user("carla", "password1234", "trainer")
    services = SimpleNamespace(db=history, staff=staff, analytics=AnalyticsService(history, clock=lambda: NOW))
    cb = AnalyticsCallbacks(services)
    cards, message, *figures = cb.refresh(user, "2026-03-10", "2026-03-11")
    assert message == "" and "kpi-card" in cards and "Conversations" in cards
    assert len(figures) == len(CHARTS) and all(f is not None for f in figures)
    file_update, _ = next(cb.export(user, "tickets", "2026-03-10", "2026-03-11"))  # a generator: see test_analytics_tab
    assert file_update["value"].endswith(".csv")

    assert cb.refresh(None, "2026-03-10", "2026-03-11")[1] == ""  # logged out: blank, no error
    staff.deactivate("carla")
    _, message, *figures = cb.refresh(user, "2026-03-10", "2026-03-11")
    assert message.startswith("⚠️ Connectez-vous") and figures == [None] * len(CHARTS)
    [(file_update, message)] = cb.export(user, "tickets", "2026-03-10", "2026-03-11")
    assert file_update["value"] is None and "Connectez-vous" in message
