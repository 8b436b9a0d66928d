"""Support analytics over a date range: KPIs with deltas vs the previous period, daily series, CSV export.

Everything is computed by SQL aggregates (GROUP BY / COUNT / SUM) through SQLAlchemy Core, on
SQLite and PostgreSQL alike; only the bot latencies of the range are fetched, to take percentiles,
packed by the database as one string per (day, intent) group. Days and hours are UTC buckets. Ticket metrics use the tickets
*created* in the range (a cohort), conversation metrics the conversations created in it.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Integer, Text, and_, case, cast, exists, extract, func, literal_column, select
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import ColumnElement

from storage.db import Database
from storage.models import Conversation, Customer, Feedback, MastodonPost, Message, Ticket, utcnow
from tickets.domain import TicketStatus
from tickets.redact import redact

CONVERSATIONS = Conversation.__table__
CUSTOMERS = Customer.__table__
MESSAGES = Message.__table__
FEEDBACK = Feedback.__table__
TICKETS = Ticket.__table__
POSTS = MastodonPost.__table__

OPEN_STATUSES = (TicketStatus.OPEN.value, TicketStatus.IN_PROGRESS.value)
# Share of 4-5 ratings is the CSAT of the KB_FACTS target ("CSAT > 85 %").
SATISFIED_MIN = 4


def day_bucket(column: ColumnElement, dialect: str) -> ColumnElement[str]:
    """'YYYY-MM-DD' of a UTC timestamp column; constants are literals so GROUP BY matches on PostgreSQL."""
    if dialect == "postgresql":
        utc = func.timezone(literal_column("'UTC'"), column)
        return func.to_char(utc, literal_column("'YYYY-MM-DD'"))
    # SQLite stores UTC timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' (see storage.models.UTCDateTime).
    return func.substr(column, literal_column("1"), literal_column("10"))


def hour_bucket(column: ColumnElement, dialect: str) -> ColumnElement[int]:
    """Hour of day (0-23, UTC) of a timestamp column."""
    if dialect == "postgresql":
        return cast(extract("hour", func.timezone(literal_column("'UTC'"), column)), Integer)
    return cast(func.substr(column, literal_column("12"), literal_column("2")), Integer)


def json_field(column: ColumnElement, key: str, dialect: str) -> ColumnElement:
    """``meta[key]`` as text/number, with a literal path (the same SQL text in SELECT and GROUP BY)."""
    if dialect == "postgresql":
        return column.op("->>")(literal_column(f"'{key}'"))
    return func.json_extract(column, literal_column(f"'$.{key}'"))


def _join_values(column: ColumnElement, dialect: str) -> ColumnElement[str]:
    """Comma-joined non-null values of a group (group_concat on SQLite, string_agg on PostgreSQL)."""
    if dialect == "postgresql":
        return func.string_agg(cast(column, Text), literal_column("','"))
    return func.group_concat(column, literal_column("','"))


@dataclass(frozen=True)
class Period:
    """A half-open UTC range [start, end)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("period bounds must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("end must be after start")

    def previous(self) -> Period:
        """The period of the same length just before this one."""
        return Period(self.start - (self.end - self.start), self.start)

    def days(self) -> list[str]:
        """Every UTC day the period touches, as 'YYYY-MM-DD'."""
        day, last = self.start.date(), (self.end - timedelta(microseconds=1)).date()
        return [str(day + timedelta(days=i)) for i in range((last - day).days + 1)]


MAX_RANGE_DAYS = 731


def period_from_dates(start: date | str | None, end: date | str | None) -> Period:
    """The UTC period covering whole days ``start`` to ``end`` INCLUSIVE; ValueError with a French message."""

    def parse(value: date | str | None, label: str) -> date:
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value or "").strip()[:10])
        except ValueError:
            raise ValueError(f"Date de {label} invalide : utilisez le format AAAA-MM-JJ.") from None

    first, last = parse(start, "début"), parse(end, "fin")
    if last < first:
        raise ValueError("La date de fin doit être postérieure ou égale à la date de début.")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise ValueError(f"Choisissez une période de {MAX_RANGE_DAYS} jours au plus.")
    midnight = datetime.min.time()
    return Period(datetime.combine(first, midnight, UTC), datetime.combine(last + timedelta(days=1), midnight, UTC))


@dataclass(frozen=True)
class Kpis:
    """Headline numbers of one period; rates are fractions (0-1), None when there is nothing to measure."""

    conversations: int = 0
    escalation_rate: float | None = None
    auto_resolution_rate: float | None = None
    tickets: int = 0
    csat_avg: float | None = None
    csat_satisfied: float | None = None
    csat_count: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    sla_met_rate: float | None = None
    complaints: int = 0

    def deltas(self, previous: Kpis) -> dict[str, float | None]:
        """Current minus previous for every KPI (None where either side is None)."""
        out: dict[str, float | None] = {}
        for f in fields(self):
            now, before = getattr(self, f.name), getattr(previous, f.name)
            out[f.name] = None if now is None or before is None else now - before
        return out


@dataclass
class AnalyticsReport:
    """Everything the analytics tab shows for a period; frames are ready for Plotly."""

    period: Period
    kpis: Kpis
    previous: Kpis
    conversations_daily: pd.DataFrame  # day, conversations, escalated, auto_resolved, *_rate
    intents: pd.DataFrame  # intent, count
    ticket_status: pd.DataFrame  # status, count
    hourly: pd.DataFrame  # hour, messages
    csat: pd.DataFrame  # score, count
    latency_daily: pd.DataFrame  # day, p50_ms, p95_ms
    sla_daily: pd.DataFrame  # day, met, missed, met_rate
    complaints_daily: pd.DataFrame  # day, complaints
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def deltas(self) -> dict[str, float | None]:
        """KPI deltas vs the previous period of the same length."""
        return self.kpis.deltas(self.previous)


def _rate(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _percentiles(values: np.ndarray) -> tuple[float | None, float | None]:
    if values.size == 0:
        return None, None
    p50, p95 = np.percentile(values, [50, 95])
    return float(p50), float(p95)


class AnalyticsService:
    """Computes the analytics report and CSV exports; ``clock`` decides which open tickets are breached."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    @property
    def dialect(self) -> str:
        return self.db.engine.dialect.name

    def report(self, start: datetime, end: datetime) -> AnalyticsReport:
        """Every chart and KPI of [start, end), plus the KPIs of the previous period for the deltas."""
        period = Period(start, end)
        timings: dict[str, float] = {}
        now = self.clock()
        tasks = {
            "answers": lambda q: q.answers(period),
            "conversations": lambda q: q.conversations_daily(period),
            "rest": lambda q: (
                q.sla_daily(period),
                q.csat(period),
                q.complaints_daily(period),
                q.ticket_status(period),
                q.hourly(period),
                q.previous_kpis(period.previous()),
            ),
        }
        out = self._run(tasks, now, timings)
        (latency, intents), conv = out["answers"], out["conversations"]
        sla, csat, complaints, status, hourly, previous = out["rest"]
        kpis = _kpis(conv, latency, sla, csat, complaints, int(status["count"].sum()))
        days = period.days()
        return AnalyticsReport(
            period=period,
            kpis=kpis,
            previous=previous,
            conversations_daily=_fill_days(conv, days),
            intents=intents,
            ticket_status=status,
            hourly=hourly,
            csat=csat,
            latency_daily=_latency_daily(latency, days),
            sla_daily=_fill_days(sla, days),
            complaints_daily=_fill_days(complaints, days),
            timings=timings,
        )

    def _run(self, tasks: dict[str, Callable], now: datetime, timings: dict[str, float]) -> dict[str, object]:
        """Run independent query groups, each on its own connection, in parallel (the DB does the work).

        A private in-memory SQLite database has a single shared connection: there, run them in turn.
        """

        def one(task: Callable):
            own: dict[str, float] = {}
            with self.db.engine.connect() as conn:
                return task(_Queries(conn, self.dialect, now, own)), own

        if isinstance(self.db.engine.pool, StaticPool):
            results = {name: one(task) for name, task in tasks.items()}
        else:
            workers = max(1, min(len(tasks), os.cpu_count() or 1))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="analytics") as pool:
                futures = {name: pool.submit(one, task) for name, task in tasks.items()}
                results = {name: future.result() for name, future in futures.items()}
        for _, own in results.values():
            for key, seconds in own.items():
                timings[key] = timings.get(key, 0.0) + seconds
        return {name: value for name, (value, _) in results.items()}

    def kpis(self, start: datetime, end: datetime) -> Kpis:
        """Only the headline numbers of [start, end)."""
        with self.db.engine.connect() as conn:
            return _Queries(conn, self.dialect, self.clock(), {}).previous_kpis(Period(start, end))

    def export_csv(self, table: str, start: datetime, end: datetime, out_dir: Path) -> Path:
        """Write the rows of ``table`` created in [start, end) to a CSV file in ``out_dir``, personal data removed.

        Free text is redacted (phones, e-mails, IBANs, handles, introduced names) and so are the names
        of the row's conversation: its contact-form name and its customer's. See ``exported_csv``
        for a file that does not outlive its download.
        """
        if table not in EXPORTS:
            raise ValueError(f"unknown export {table!r}; choose among {', '.join(EXPORTS)}")
        spec = EXPORTS[table]
        period = Period(start, end)
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"mobiliachat_{table}_{period.start:%Y%m%d}_{period.end:%Y%m%d}.csv"
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([name for name, _ in spec.columns])
            with self.db.engine.connect() as conn:
                for rows in conn.execution_options(yield_per=5000).execute(_export_query(spec, period)).partitions():
                    writer.writerows(_export_row(row, spec) for row in rows)
        return path

    @contextmanager
    def exported_csv(self, table: str, start: datetime, end: datetime) -> Iterator[Path]:
        """``export_csv`` into a private temporary folder, deleted with the file when the block exits."""
        folder = Path(tempfile.mkdtemp(prefix="mobiliachat-export-"))
        try:
            yield self.export_csv(table, start, end, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class ExportSpec:
    """Columns of one exportable table; free-text ones are redacted, identity columns are never listed.

    ``conversation_column`` links a row to its conversation, whose contact and customer names are
    masked in the redacted columns.
    """

    columns: tuple[tuple[str, ColumnElement], ...]
    time_column: ColumnElement
    redacted: frozenset[str] = frozenset()
    conversation_column: ColumnElement | None = None


EXPORTS: dict[str, ExportSpec] = {
    "conversations": ExportSpec(
        tuple((c, CONVERSATIONS.c[c]) for c in ("id", "channel", "status", "created_at", "updated_at")),
        CONVERSATIONS.c.created_at,
    ),
    "messages": ExportSpec(
        (
            ("id", MESSAGES.c.id),
            ("conversation_id", MESSAGES.c.conversation_id),
            ("role", MESSAGES.c.role),
            ("content", MESSAGES.c.content),
            ("intent", MESSAGES.c.meta["intent"].as_string()),
            ("confidence", MESSAGES.c.meta["confidence"].as_float()),
            ("needs_escalation", MESSAGES.c.meta["needs_escalation"].as_boolean()),
            ("latency_ms", MESSAGES.c.meta["latency_ms"].as_float()),
            ("created_at", MESSAGES.c.created_at),
        ),
        MESSAGES.c.created_at,
        frozenset({"content"}),
        MESSAGES.c.conversation_id,
    ),
    "tickets": ExportSpec(
        tuple(
            (c, TICKETS.c[c])
            for c in (
                "id",
                "conversation_id",
                "category",
                "priority",
                "status",
                "assignee",
                "summary",
                "resolution_notes",
                "csat",
                "created_at",
                "updated_at",
                "resolved_at",
                "sla_due_at",
            )
        ),
        TICKETS.c.created_at,
        frozenset({"summary", "resolution_notes"}),
        TICKETS.c.conversation_id,
    ),
    "feedback": ExportSpec(
        tuple((c, FEEDBACK.c[c]) for c in ("id", "message_id", "conversation_id", "rating", "comment", "created_at")),
        FEEDBACK.c.created_at,
        frozenset({"comment"}),
        FEEDBACK.c.conversation_id,
    ),
    "mastodon_posts": ExportSpec(
        tuple(
            (c, POSTS.c[c])
            for c in (
                "id",
                "created_at",
                "is_complaint",
                "complaint_score",
                "urgency",
                "reply_status",
                "ticket_id",
                "content",
            )
        ),
        POSTS.c.created_at,
        frozenset({"content"}),
    ),
}


NAME_COLUMNS = ("_contact_name", "_customer_name")  # fetched to redact, never written


def _export_query(spec: ExportSpec, period: Period):
    """The rows of the period; with the names of each row's conversation when it has one."""
    stmt = select(*(col.label(name) for name, col in spec.columns))
    if spec.conversation_column is not None:
        stmt = (
            stmt.add_columns(
                CONVERSATIONS.c.contact_name.label(NAME_COLUMNS[0]), CUSTOMERS.c.full_name.label(NAME_COLUMNS[1])
            )
            .select_from(spec.time_column.table)
            .outerjoin(CONVERSATIONS, CONVERSATIONS.c.id == spec.conversation_column)
            .outerjoin(CUSTOMERS, CUSTOMERS.c.id == CONVERSATIONS.c.customer_id)
        )
    return stmt.where(spec.time_column >= period.start, spec.time_column < period.end).order_by(spec.time_column)


def _export_row(row, spec: ExportSpec) -> list:
    values = row._mapping
    names = [values[c] for c in NAME_COLUMNS if values.get(c)]
    return [
        redact(v, names) if k in spec.redacted else (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in ((name, values[name]) for name, _ in spec.columns)
    ]


class _Queries:
    """The SQL of the report, on one connection; each query's seconds go to ``timings``."""

    def __init__(self, conn, dialect: str, now: datetime, timings: dict[str, float]) -> None:
        self.conn, self.dialect, self.now, self.timings = conn, dialect, now, timings

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0

    def _frame(self, name: str, stmt, columns: list[str]) -> pd.DataFrame:
        with self._timed(name):
            rows = self.conn.execute(stmt).all()
        return pd.DataFrame(rows, columns=columns)

    def conversations_daily(self, period: Period) -> pd.DataFrame:
        c = CONVERSATIONS.c
        has_ticket = exists().where(TICKETS.c.conversation_id == c.id)
        has_negative = exists().where(FEEDBACK.c.conversation_id == c.id, FEEDBACK.c.rating == -1)
        inner = (
            select(
                day_bucket(c.created_at, self.dialect).label("day"),
                case((has_ticket, 1), else_=0).label("escalated"),
                case((and_(~has_ticket, ~has_negative), 1), else_=0).label("auto"),
            )
            .where(c.created_at >= period.start, c.created_at < period.end)
            .subquery()
        )
        stmt = (
            select(inner.c.day, func.count(), func.sum(inner.c.escalated), func.sum(inner.c.auto))
            .group_by(inner.c.day)
            .order_by(inner.c.day)
        )
        return self._frame("conversations", stmt, ["day", "conversations", "escalated", "auto_resolved"])

    def answers(self, period: Period) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Bot answers in one pass: (every latency with its day, answers per intent).

        One GROUP BY (day, intent) gives the intent counts and, for the percentiles, the latencies
        themselves packed per group (group_concat / string_agg): no Python object per message.
        """
        m = MESSAGES.c
        inner = (
            select(
                day_bucket(m.created_at, self.dialect).label("day"),
                func.coalesce(json_field(m.meta, "intent", self.dialect), literal_column("'inconnu'")).label("intent"),
                json_field(m.meta, "latency_ms", self.dialect).label("latency"),
            )
            .where(m.role == "assistant", m.created_at >= period.start, m.created_at < period.end)
            .subquery()
        )
        stmt = select(inner.c.day, inner.c.intent, func.count(), _join_values(inner.c.latency, self.dialect)).group_by(
            inner.c.day, inner.c.intent
        )
        with self._timed("answers"):
            groups = self.conn.execute(stmt).all()
        intents = pd.DataFrame(groups, columns=["day", "intent", "count", "latencies"])[["intent", "count"]]
        intents = intents.groupby("intent", as_index=False)["count"].sum()
        intents = intents.sort_values(["count", "intent"], ascending=[False, True], ignore_index=True)
        packed = [(day, np.array(text.split(","), dtype=float)) for day, _, _, text in groups if text]
        if not packed:
            return pd.DataFrame({"day": pd.Series(dtype=object), "latency_ms": pd.Series(dtype=float)}), intents
        latency = pd.DataFrame(
            {
                "day": np.repeat([day for day, _ in packed], [len(values) for _, values in packed]),
                "latency_ms": np.concatenate([values for _, values in packed]),
            }
        )
        return latency, intents

    def _ticket_range(self, period: Period):
        return and_(TICKETS.c.created_at >= period.start, TICKETS.c.created_at < period.end)

    def sla_daily(self, period: Period) -> pd.DataFrame:
        t = TICKETS.c
        met = and_(t.resolved_at.is_not(None), t.resolved_at <= t.sla_due_at)
        missed = case(
            (and_(t.resolved_at.is_not(None), t.resolved_at > t.sla_due_at), 1),
            (and_(t.status.in_(OPEN_STATUSES), t.sla_due_at < self.now), 1),
            else_=0,
        )
        inner = (
            select(
                day_bucket(t.created_at, self.dialect).label("day"),
                case((met, 1), else_=0).label("met"),
                missed.label("missed"),
            )
            .where(self._ticket_range(period))
            .subquery()
        )
        stmt = (
            select(inner.c.day, func.sum(inner.c.met), func.sum(inner.c.missed))
            .group_by(inner.c.day)
            .order_by(inner.c.day)
        )
        return self._frame("sla", stmt, ["day", "met", "missed"])

    def ticket_status(self, period: Period) -> pd.DataFrame:
        stmt = select(TICKETS.c.status, func.count()).where(self._ticket_range(period)).group_by(TICKETS.c.status)
        found = dict(self._frame("ticket_status", stmt, ["status", "count"]).itertuples(index=False))
        return pd.DataFrame(
            {"status": [s.value for s in TicketStatus], "count": [int(found.get(s.value, 0)) for s in TicketStatus]}
        )

    def csat(self, period: Period) -> pd.DataFrame:
        stmt = (
            select(TICKETS.c.csat, func.count())
            .where(self._ticket_range(period), TICKETS.c.csat.is_not(None))
            .group_by(TICKETS.c.csat)
        )
        found = dict(self._frame("csat", stmt, ["score", "count"]).itertuples(index=False))
        return pd.DataFrame({"score": range(1, 6), "count": [int(found.get(s, 0)) for s in range(1, 6)]})

    def complaints_daily(self, period: Period) -> pd.DataFrame:
        p = POSTS.c
        inner = (
            select(day_bucket(p.created_at, self.dialect).label("day"))
            .where(p.is_complaint.is_(True), p.created_at >= period.start, p.created_at < period.end)
            .subquery()
        )
        stmt = select(inner.c.day, func.count()).group_by(inner.c.day).order_by(inner.c.day)
        return self._frame("complaints", stmt, ["day", "complaints"])

    def hourly(self, period: Period) -> pd.DataFrame:
        m = MESSAGES.c
        inner = (
            select(hour_bucket(m.created_at, self.dialect).label("hour"))
            .where(m.role == "user", m.created_at >= period.start, m.created_at < period.end)
            .subquery()
        )
        stmt = select(inner.c.hour, func.count()).group_by(inner.c.hour)
        found = dict(self._frame("hourly", stmt, ["hour", "messages"]).itertuples(index=False))
        return pd.DataFrame({"hour": range(24), "messages": [int(found.get(h, 0)) for h in range(24)]})

    def previous_kpis(self, period: Period) -> Kpis:
        """KPIs only (no chart frames) of a period."""
        status = self.ticket_status(period)
        return _kpis(
            self.conversations_daily(period),
            self.answers(period)[0],
            self.sla_daily(period),
            self.csat(period),
            self.complaints_daily(period),
            int(status["count"].sum()),
        )


def _kpis(
    conv: pd.DataFrame,
    latency: pd.DataFrame,
    sla: pd.DataFrame,
    csat: pd.DataFrame,
    complaints: pd.DataFrame,
    tickets: int,
) -> Kpis:
    """Fold the per-day aggregates into the headline numbers."""
    n = int(conv["conversations"].sum())
    rated = int(csat["count"].sum())
    met, missed = int(sla["met"].sum()), int(sla["missed"].sum())
    p50, p95 = _percentiles(latency["latency_ms"].to_numpy(dtype=float))
    return Kpis(
        conversations=n,
        escalation_rate=_rate(int(conv["escalated"].sum()), n),
        auto_resolution_rate=_rate(int(conv["auto_resolved"].sum()), n),
        tickets=tickets,
        csat_avg=_rate(int((csat["score"] * csat["count"]).sum()), rated),
        csat_satisfied=_rate(int(csat.loc[csat["score"] >= SATISFIED_MIN, "count"].sum()), rated),
        csat_count=rated,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        sla_met_rate=_rate(met, met + missed),
        complaints=int(complaints["complaints"].sum()),
    )


def _fill_days(frame: pd.DataFrame, days: list[str]) -> pd.DataFrame:
    """One row per day of the period (zeros where nothing happened), with the rates of the rows."""
    out = frame.set_index("day").reindex(days, fill_value=0).rename_axis("day").reset_index()
    numeric = out.columns.drop("day")
    out[numeric] = out[numeric].fillna(0).astype(int)
    if "conversations" in out:
        total = out["conversations"].where(out["conversations"] > 0)
        out["escalation_rate"] = out["escalated"] / total
        out["auto_resolution_rate"] = out["auto_resolved"] / total
    if "met" in out:
        judged = (out["met"] + out["missed"]).where(lambda s: s > 0)
        out["met_rate"] = out["met"] / judged
    return out


def _latency_daily(latency: pd.DataFrame, days: list[str]) -> pd.DataFrame:
    """p50 / p95 of the bot latency per day (NaN on days without answers)."""
    grouped = latency.groupby("day")["latency_ms"]
    frame = pd.DataFrame({"p50_ms": grouped.quantile(0.5), "p95_ms": grouped.quantile(0.95)})
    return frame.reindex(days).rename_axis("day").reset_index()
