#!/usr/bin/env bash
# One command from a fresh clone to a running app: set up .venv, build the KB index (skipped
# when up to date), start the app on its embedded defaults (SQLite file, shipped KB).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m rag ingest
exec .venv/bin/python app.py
