"""The bundled acme example decides each sample proposal as its README says."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from discretion import Guard, Outcome, SqlStore, load_pack
from discretion.context import SqliteCaseStore

ACME = Path(__file__).parent.parent / "examples" / "acme"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

EXPECTED = {
    "01-refund-within-policy": ("allow", None),
    "02-refund-above-ai-standard-limit": ("route", "tier2"),
    "03-refund-carrier-lost": ("allow_exception", None),
    "04-refund-carrier-lost-above-ai-authority": ("route", "finance"),
    "05-refund-damaged-needs-human-review": ("route", "tier1"),
    "06-refund-loyalty-save-late-return": ("route", "tier2"),
    "07-refund-fraud-hold": ("deny", None),
    "08-refund-above-amount-paid": ("deny", None),
    "09-refund-no-permitted-reason": ("deny", None),
    "10-shipping-fee-waiver-outage-goodwill": ("allow_exception", None),
    "11-store-credit-reason-not-cited": ("route", "tier1"),
    "12-replacement-damaged-in-window": ("allow", None),
    "13-sla-credit-consumer-account": ("deny", None),
    "14-sla-credit-severe-miss-by-tier2": ("route", "finance"),
    "15-refund-over-customer-exception-budget": ("route", "finance"),
    "16-refund-unknown-order": ("route", "tier1"),
}


@pytest.fixture(scope="module")
def guard() -> Guard:
    return Guard(
        load_pack(ACME / "pack"),
        store=SqlStore("sqlite://"),
        context=SqliteCaseStore.from_sql(ACME / "cases.sql"),
        clock=lambda: NOW,
    )


def test_every_sample_proposal_is_listed():
    assert {p.stem for p in (ACME / "proposals").glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_proposal_gets_its_documented_outcome(guard, name):
    proposal = json.loads((ACME / "proposals" / f"{name}.json").read_text(encoding="utf-8"))
    decision = guard.decide(proposal)
    outcome, role = EXPECTED[name]
    assert decision.outcome is Outcome(outcome)
    assert decision.required_role == role


def test_samples_cover_every_outcome():
    assert {o for o, _ in EXPECTED.values()} == {o.value for o in Outcome}


def test_unknown_order_routes_naming_the_records_that_do_not_check_out(guard):
    proposal = json.loads(
        (ACME / "proposals" / "16-refund-unknown-order.json").read_text(encoding="utf-8")
    )
    decision = guard.decide(proposal)
    # The order the agent typed is not on record: unknown, not also a mismatch with the
    # case's own order (A-50027), whose link it cannot be compared with.
    assert decision.rules == ["discretion.entity.unknown"]
    assert decision.causes == ["order 'A-59999' is not on record"]
