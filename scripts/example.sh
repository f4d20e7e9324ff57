#!/usr/bin/env bash
# The main job, on SQLite with no API key: a LangChain support agent whose refund, credit and
# replacement tools are governed by the acme pack works through sample tickets (a scripted
# model offline; a real one when OPENAI_API_KEY is set); then the acme sample proposals are
# decided into a table, and both ledgers are verified.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[langchain]'

.venv/bin/python examples/support_agent.py

db=acme-example.db
rm -f "$db" "$db-wal" "$db-shm"
.venv/bin/discretion check \
  --pack examples/acme/pack \
  --context examples/acme/cases.sql \
  --db "sqlite:///$db" \
  --now 2026-11-26T12:00:00+00:00 \
  examples/acme/proposals/*.json
.venv/bin/discretion ledger verify --db "sqlite:///$db"
