"""Ungoverned "approve what was approved before" drifts; bounded precedent does not."""

from __future__ import annotations

import importlib.util
import sys
from decimal import Decimal
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "precedent_drift.py"


def load_simulation(monkeypatch):
    # The script imports its sibling benchmarks (`decide`, `precedent`) as when run directly.
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    for sibling in ("decide", "precedent"):
        monkeypatch.delitem(sys.modules, sibling, raising=False)
    spec = importlib.util.spec_from_file_location("precedent_drift", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules.
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_bounded_precedent_stops_the_drift_that_ungoverned_reuse_allows(capsys, monkeypatch):
    drift = load_simulation(monkeypatch)
    totals = drift.simulate(1000, seed=7)
    ungoverned, governed = sum(totals.ungoverned), sum(totals.governed)
    print(f"ungoverned {ungoverned:,.2f}  discretion {governed:,.2f}")
    # Ungoverned reuse lets exception money grow round after round.
    assert totals.ungoverned == sorted(totals.ungoverned)
    assert totals.ungoverned[-1] > 3 * totals.ungoverned[0]
    # discretion never grants above the precedent's bound, nor more than bound x grants.
    assert totals.governed_largest <= drift.BOUND
    assert governed <= drift.BOUND * totals.governed_count
    assert totals.governed_count + totals.routed == 1000
    assert governed < ungoverned / 50
    assert max(totals.governed[1:]) <= drift.BOUND * 100
    assert isinstance(governed, Decimal)
    assert "ungoverned" in capsys.readouterr().out
