#!/usr/bin/env bash
# Set up everything (Python deps, Chromium, nginx, a throw-away PostgreSQL and Redis) and run the whole test suite,
# slow tests included; storage and ticket tests run on SQLite and on PostgreSQL.
# Extra arguments go to pytest. Used as is by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
bash scripts/test-services.sh
# MOBILIA_TEST_POSTGRES_URL may point to another server; otherwise start the local one, and stop
# it again when the tests end (unless it was already running before).
stop_at_exit=()
trap 'for s in "${stop_at_exit[@]}"; do bash "scripts/$s" stop; done' EXIT
if [ -z "${MOBILIA_TEST_POSTGRES_URL:-}" ]; then
  pg_was_running=$(bash scripts/postgres.sh status)
  pg_url=$(bash scripts/postgres.sh)  # a plain assignment: set -e sees a failure
  [ "$pg_was_running" = running ] || stop_at_exit+=(postgres.sh)
else
  pg_url=$MOBILIA_TEST_POSTGRES_URL
fi
export MOBILIA_TEST_POSTGRES_URL=$pg_url
# The same for Redis (leases, change notices, shared limits); tests/scale/ start their own as well.
if [ -z "${MOBILIA_TEST_REDIS_URL:-}" ]; then
  redis_was_running=$(bash scripts/redis.sh status)
  redis_url=$(bash scripts/redis.sh)
  [ "$redis_was_running" = running ] || stop_at_exit+=(redis.sh)
else
  redis_url=$MOBILIA_TEST_REDIS_URL
fi
export MOBILIA_TEST_REDIS_URL=$redis_url
.venv/bin/ruff check .
# pytest exits 5 when it collects no test: like any non-zero code, that fails this script.
.venv/bin/python -m pytest "$@"
