"""bench.load's summary of repeated runs (the load itself is a benchmark, never a test)."""

from __future__ import annotations

from bench.load import make_parser, medians


def _run(replicas: int, ratio: float, p95: float, stored: bool = True, database_ms: float | None = None) -> dict:
    return {"replicas": replicas, "served_vs_engine_1core": ratio, "accepted_per_s": 100 * ratio,
            "database_cpu_ms_per_message": database_ms, "latency_ms": {"p95": p95}, "stored_exactly_once": stored}  # fmt: skip


def test_repeated_runs_are_summarised_by_their_median_and_range_per_replica_count() -> None:
    summary = medians([_run(1, 0.9, 400.0), _run(1, 1.1, 350.0), _run(1, 1.0, 500.0), _run(2, 1.2, 300.0, stored=False)])
    one = summary["1"]
    assert one["runs"] == 3
    assert one["served_vs_engine_1core"] == {"median": 1.0, "min": 0.9, "max": 1.1}
    assert one["p95_ms"] == {"median": 400.0, "min": 350.0, "max": 500.0}
    assert one["all_stored_exactly_once"] is True and "machine_cpu_ms_per_message" not in one  # absent: not shown
    assert summary["2"]["runs"] == 1 and summary["2"]["all_stored_exactly_once"] is False
    assert make_parser().parse_args(["--repeat", "7"]).repeat == 7
    assert make_parser().parse_args(["--engine-pair"]).engine_pair and not make_parser().parse_args([]).engine_pair


def test_a_figure_some_runs_could_not_measure_is_summarised_over_the_others() -> None:
    # The database's CPU is None where no local PostgreSQL server could be seen (SQLite, a remote server).
    summary = medians([_run(1, 1.0, 300.0, database_ms=0.6), _run(1, 1.1, 310.0), _run(1, 0.9, 320.0, database_ms=0.5),
                       _run(2, 1.0, 300.0)])  # fmt: skip
    assert summary["1"]["database_cpu_ms_per_message"] == {"median": 0.55, "min": 0.5, "max": 0.6}
    assert "database_cpu_ms_per_message" not in summary["2"]


def test_the_database_cpu_is_read_only_from_a_postgresql_server_on_this_machine(postgres_server) -> None:
    from bench.load import LOCAL_HOSTS, _database_cpu

    assert _database_cpu("sqlite:///load.db") is None  # in the API process: nothing apart to read
    assert _database_cpu("postgresql+psycopg://u:p@db.example.org/mobilia") is None  # another machine's
    seen = _database_cpu(postgres_server.url)
    if postgres_server.url.host in LOCAL_HOSTS:  # scripts/postgres.sh's, as in CI
        assert seen is not None and seen > 0
    else:
        assert seen is None
