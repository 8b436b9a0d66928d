"""bench.load's summary of repeated runs (the load itself is a benchmark, never a test)."""

from __future__ import annotations

from bench.load import make_parser, medians


def _run(replicas: int, ratio: float, p95: float, stored: bool = True) -> dict:
    return {"replicas": replicas, "served_vs_engine_1core": ratio, "accepted_per_s": 100 * ratio,
            "latency_ms": {"p95": p95}, "stored_exactly_once": stored}  # fmt: skip


def test_repeated_runs_are_summarised_by_their_median_and_range_per_replica_count() -> None:
    summary = medians([_run(1, 0.9, 400.0), _run(1, 1.1, 350.0), _run(1, 1.0, 500.0), _run(2, 1.2, 300.0, stored=False)])
    one = summary["1"]
    assert one["runs"] == 3
    assert one["served_vs_engine_1core"] == {"median": 1.0, "min": 0.9, "max": 1.1}
    assert one["p95_ms"] == {"median": 400.0, "min": 350.0, "max": 500.0}
    assert one["all_stored_exactly_once"] is True and "machine_cpu_ms_per_message" not in one  # absent: not shown
    assert summary["2"]["runs"] == 1 and summary["2"]["all_stored_exactly_once"] is False
    assert make_parser().parse_args(["--repeat", "7"]).repeat == 7
