#!/usr/bin/env bash
# Decide the acme example's sample proposals on SQLite (no API key needed), print the
# decisions, and verify the ledger they were recorded in.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .

db=acme-example.db
rm -f "$db" "$db-wal" "$db-shm"
.venv/bin/discretion check \
  --pack examples/acme/pack \
  --context examples/acme/cases.sql \
  --db "sqlite:///$db" \
  --now 2026-11-26T12:00:00+00:00 \
  examples/acme/proposals/*.json
.venv/bin/discretion ledger verify --db "sqlite:///$db"
