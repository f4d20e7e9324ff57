#!/usr/bin/env bash
# Run the whole test suite from a clean clone: make .venv, install discretion with its test
# extras, run pytest (PostgreSQL tests too when a server answers), ruff and mypy.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'

if [ -z "${DISCRETION_TEST_POSTGRES_URL:-}" ]; then
  candidate=postgresql://postgres@127.0.0.1:5432/test
  if .venv/bin/python -c "import psycopg; psycopg.connect('$candidate', connect_timeout=3).close()" 2>/dev/null; then
    export DISCRETION_TEST_POSTGRES_URL=$candidate
  else
    echo "PostgreSQL not reachable at $candidate: its tests will be skipped" >&2
  fi
fi

.venv/bin/ruff check src tests benchmarks examples
.venv/bin/ruff format --check src tests benchmarks examples
.venv/bin/mypy
.venv/bin/pytest "$@"
