"""Every benchmark runs to the end on its smallest setting.

Their figures are not checked here (speed is measured by running them, not by tests); what is
checked is that each still drives the library as it is, so that a change to an API a benchmark
calls breaks the tests, not the next measurement.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

RUNS = {
    "decide": (["decide.py", "--n", "3"], "decide allow, SQLite"),
    "rules": (["rules.py", "--n", "3", "--rounds", "1", "--sizes", "2,4"], "hard limits"),
    "tools": (["tools.py", "--n", "3"], "largest p50 added per call"),
    "pack_load": (["pack_load.py", "--rules", "5", "--runs", "1"], "first load"),
    "precedent": (
        ["precedent.py", "--n", "3", "--precedents", "20", "--decisions", "20"],
        "p99 with 20 precedents",
    ),
    "precedent_drift": (["precedent_drift.py", "--n", "3"], "discretion granted"),
    "scale": (
        ["scale.py", "--n", "3", "--decisions", "20", "--precedents", "20", "--skip-http"],
        "ratio at scale / empty, SQLite",
    ),
    "soak": (["soak.py", "--n", "5"], "nothing allowed above the role's authority"),
    "startup": (["startup.py", "--n", "1", "--top", "1"], "slowest imports"),
    "steps": (["steps.py", "--n", "3"], "evaluate (pack), first call"),
    "http_decisions": (
        ["http_decisions.py", "--servers", "1", "--n", "10", "--generator", "python"],
        "records verify",
    ),
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_benchmark_runs_on_its_smallest_setting(name, tmp_path):
    arguments, expected = RUNS[name]
    env = {**os.environ, "PYTHONPATH": str(BENCHMARKS)}
    env.pop("DISCRETION_BENCH_POSTGRES_URL", None)
    done = subprocess.run(
        [sys.executable, *arguments],
        cwd=BENCHMARKS,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert expected in done.stdout + done.stderr
