#!/usr/bin/env bash
# Set up everything (Python deps, Chromium) and run the whole test suite, slow tests included.
# Extra arguments go to pytest. Used as is by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
bash scripts/test-services.sh
.venv/bin/ruff check .
# pytest exits 5 when it collects no test: like any non-zero code, that fails this script.
.venv/bin/python -m pytest "$@"
