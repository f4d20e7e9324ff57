"""How many round trips a decision makes on PostgreSQL (benchmarks/pg_roundtrips.py counts them).

A budget key's lock and the read under it travel together: a regression that sends them apart
shows here as more round trips, whatever the machine's speed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "pg_roundtrips.py"
URL = os.environ.get("DISCRETION_TEST_POSTGRES_URL")


@pytest.mark.postgres
def test_a_decision_locks_and_reads_each_budget_key_in_one_round_trip():
    if not URL:
        pytest.skip("PostgreSQL tests need DISCRETION_TEST_POSTGRES_URL (scripts/test.sh sets it)")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--n", "5"],
        env={**os.environ, "DISCRETION_BENCH_POSTGRES_URL": URL},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = dict(re.findall(r"^(\S+): decide allow.*?, ([\d.]+) round trips", done.stdout, re.M))
    # BEGIN, the head's lock, the writes with the COMMIT; acme adds a total's lock with its read
    # (once: its guard is in-process, so it reads no totals before the transaction), and a
    # budget's lock with its sum.
    assert float(found["bench-minimal"]) <= 3
    assert float(found["acme-support"]) <= 5
