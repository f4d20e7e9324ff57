"""Decision amnesia, simulated: an agent that repeats past approvals, with and without us."""

from __future__ import annotations

import runpy
import sys
from decimal import Decimal

import pytest

from discretion import load_pack
from discretion.errors import ConfigurationError
from discretion.evals import EvalReport, EvalRun, simulate_amnesia

from .helpers import ACME_PACK, EVALS, copy_acme_pack


@pytest.fixture(scope="module")
def result():
    return simulate_amnesia(load_pack(ACME_PACK), tickets=400, seed=11)


def test_ungoverned_agent_moves_more_exception_money_than_the_governed_one(result):
    assert result.ungoverned_total > result.governed_total > 0
    # The difference is money no role could have granted under the pack.
    assert result.outside_policy > 0
    assert result.self_approved >= result.outside_policy
    assert result.ungoverned_exceptions > result.governed_exceptions
    assert result.routed > 0


def test_running_totals_only_grow_and_end_at_the_totals(result):
    tickets = [p.ticket for p in result.points]
    assert tickets == sorted(tickets)
    assert tickets[-1] == 400
    for earlier, later in zip(result.points, result.points[1:], strict=False):
        assert later.ungoverned_money >= earlier.ungoverned_money
        assert later.governed_money >= earlier.governed_money
    last = result.points[-1]
    assert (last.ungoverned_money, last.governed_money) == (
        result.ungoverned_total,
        result.governed_total,
    )
    assert all(0 <= p.governed_rate <= 1 and 0 <= p.ungoverned_rate <= 1 for p in result.points)


def test_the_same_seed_gives_the_same_stream():
    pack = load_pack(ACME_PACK)
    again = simulate_amnesia(pack, tickets=150, seed=3)
    assert again == simulate_amnesia(pack, tickets=150, seed=3)
    assert again != simulate_amnesia(pack, tickets=150, seed=4)


def test_a_pack_without_refunds_is_refused(tmp_path):
    judged = load_pack(EVALS / "judged" / "pack.yaml")
    with pytest.raises(ConfigurationError, match="no 'refund' action"):
        simulate_amnesia(judged, tickets=10)
    reads_more = copy_acme_pack(
        tmp_path,
        old="      - exposure.all_count_30d\n\n    hard_limits:",
        new="      - exposure.all_count_30d\n      - case.severity\n\n    hard_limits:",
        file="refund.yaml",
    )
    with pytest.raises(ConfigurationError, match=r"case\.severity"):
        simulate_amnesia(load_pack(reads_more), tickets=10)


def test_amnesia_chart_is_written_into_the_html_report(result):
    html = EvalReport(EvalRun(suites=(), judge=None, extras={"amnesia": result})).html()
    assert 'id="amnesia"' in html
    assert html.count("<polyline") == 4
    assert f"{result.ungoverned_total} USD" in html


def test_simulate_amnesia_script_prints_both_totals(tmp_path, monkeypatch, capsys):
    out = tmp_path / "amnesia.html"
    argv = ["simulate_amnesia.py", "--tickets", "120", "--seed", "5", "--html", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(EVALS / "simulate_amnesia.py"), run_name="__main__")
    assert exited.value.code == 0
    printed = capsys.readouterr().out
    expected = simulate_amnesia(load_pack(ACME_PACK), tickets=120, seed=5)
    assert f"ungoverned: {expected.ungoverned_total:,.2f} USD" in printed
    assert f"behind discretion: {expected.governed_total:,.2f} USD" in printed
    assert out.read_text(encoding="utf-8").count("<polyline") == 4
    assert expected.ungoverned_total > expected.governed_total > Decimal(0)
