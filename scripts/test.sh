#!/usr/bin/env bash
# Set up everything (Python deps, Chromium, a throw-away PostgreSQL) and run the whole test suite,
# slow tests included; storage and ticket tests run on SQLite and on PostgreSQL.
# Extra arguments go to pytest. Used as is by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
bash scripts/test-services.sh
# MOBILIA_TEST_POSTGRES_URL may point to another server; otherwise start the local one.
pg_url=${MOBILIA_TEST_POSTGRES_URL:-$(bash scripts/postgres.sh)}  # a plain assignment: set -e sees a failure
export MOBILIA_TEST_POSTGRES_URL=$pg_url
.venv/bin/ruff check .
# pytest exits 5 when it collects no test: like any non-zero code, that fails this script.
.venv/bin/python -m pytest "$@"
