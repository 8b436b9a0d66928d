"""Analytics benchmark: time every KPI, delta and chart of the analytics tab over a demo database.

    python -m bench.analytics [--conversations 100000 --days 90 --seed 42]

Builds the synthetic database with `tickets.demo` once (cached under data/bench/, reused while the
parameters match) and times the full report over its whole range (all queries, KPIs and the
previous-period deltas) plus the Plotly figures the tab draws. Prints one JSON object.
Target (issue 3): < 2 s in total.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "data" / "bench"
TARGET_S = 2.0


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m bench.analytics`."""
    parser = argparse.ArgumentParser(prog="python -m bench.analytics")
    parser.add_argument("--conversations", type=int, default=100_000, help="conversations in the demo DB")
    parser.add_argument("--days", type=int, default=90, help="days of history, also the measured range")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--runs", type=int, default=3, help="timed runs (the first is reported as cold)")
    parser.add_argument("--rebuild", action="store_true", help="regenerate the cached demo database")
    return parser


def demo_database(conversations: int, days: int, seed: int, rebuild: bool) -> tuple[str, datetime, float | None]:
    """URL of the cached demo DB, the end of its history and the seconds spent generating it (None if reused)."""
    from storage import Database
    from storage.models import utcnow
    from tickets.demo import DemoConfig, generate

    CACHE.mkdir(parents=True, exist_ok=True)
    stem = CACHE / f"demo-{conversations}c-{days}d-{seed}"
    path, meta = stem.with_suffix(".db"), stem.with_suffix(".json")
    if path.exists() and meta.exists() and not rebuild:
        return f"sqlite:///{path}", datetime.fromisoformat(json.loads(meta.read_text())["end"]), None
    for stale in (path, meta, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    end = utcnow()
    db = Database(f"sqlite:///{path}")
    t0 = time.perf_counter()
    db.migrate()
    generate(db, DemoConfig(days=days, conversations=conversations, seed=seed, now=end))
    seconds = time.perf_counter() - t0
    db.dispose()
    meta.write_text(json.dumps({"end": end.isoformat(), "seconds": seconds}))
    return f"sqlite:///{path}", end, seconds


def row_counts(db) -> dict[str, int]:
    """Rows per table of the demo DB."""
    from sqlalchemy import func, select

    from storage.models import Base

    with db.engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in Base.metadata.tables.items()
        }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print JSON."""
    args = make_parser().parse_args(argv)
    from storage import Database
    from tickets.analytics import AnalyticsService
    from ui.analytics_figures import build_figures, kpi_cards_html

    url, end, generate_s = demo_database(args.conversations, args.days, args.seed, args.rebuild)
    db = Database(url)
    db.migrate()  # a cached DB gets the indexes of newer migrations
    service = AnalyticsService(db)
    start = end - timedelta(days=args.days)
    runs = []
    for _ in range(max(1, args.runs)):
        t0 = time.perf_counter()
        report = service.report(start, end)
        t1 = time.perf_counter()
        figures = build_figures(report)
        kpi_cards_html(report)
        t2 = time.perf_counter()
        runs.append(
            {
                "report_s": t1 - t0,
                "figures_s": t2 - t1,
                "total_s": t2 - t0,
                "queries_s": {k: round(v, 4) for k, v in report.timings.items()},
            }
        )
    cold, warm = runs[0], runs[1:] or runs
    result = {
        "db": url.removeprefix("sqlite:///"),
        "range_days": args.days,
        "db_rows": row_counts(db),
        "generate_s": None if generate_s is None else round(generate_s, 2),
        "queries_s": cold["queries_s"],
        "report_s": round(cold["report_s"], 3),
        "figures_s": round(cold["figures_s"], 3),
        "figures": len(figures),
        "total_s": round(cold["total_s"], 3),
        "warm_total_s": round(statistics.median(r["total_s"] for r in warm), 3),
        "target_s": TARGET_S,
        "ok": cold["total_s"] < TARGET_S,
        "kpis": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in vars(report.kpis).items()},
    }
    db.dispose()
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
