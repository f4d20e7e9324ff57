"""Actions that move no money: amounts counted in a unit the pack declares (`MILES`)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from conftest import NOW, Counter, FakeClock
from discretion import (
    Actor,
    CallRouted,
    Guard,
    Money,
    Outcome,
    PolicyError,
    ProposalError,
    SqlStore,
    load_pack,
)
from discretion.api import create_app
from discretion.context import ContextRequest
from discretion.store._schema import decisions, reservations

HERE = Path(__file__).resolve().parent.parent
UNITS = HERE / "packs" / "units.yaml"
BOT = Actor(id="bot-1", role="ai_agent")
TIER1 = Actor(id="tina", role="tier1", is_ai=False)


class Bookings:
    """Every booking is on record, its fare paid in the currency a proposal names."""

    in_process = True

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        facts: dict[str, Any] = {"fx.rate_to_eur": "1.170000" if request.currency == "GBP" else "1"}
        if request.order_id is not None:
            facts["order.id"] = request.order_id
            currency = request.currency if request.currency in ("EUR", "GBP") else "EUR"
            facts["booking.fare"] = {"amount": "300.00", "currency": currency}
        return facts


def guard(store: Any, pack: Path = UNITS) -> Guard:
    return Guard(
        load_pack(pack), store=store, context=Bookings(), clock=FakeClock(NOW), ids=Counter()
    )


def miles(count: Any, *, booking: str = "B-1", actor: Actor = BOT, **extra: Any) -> dict[str, Any]:
    return {
        "actor": actor.model_dump(),
        "tool": {
            "name": "award_miles",
            "arguments": {"miles": count, "booking_id": booking, **extra},
        },
        "rationale": {"text": "the flight was delayed five hours"},
    }


def fare(amount: str, currency: str = "EUR", *, booking: str = "B-1") -> dict[str, Any]:
    return {
        "actor": BOT.model_dump(),
        "tool": {
            "name": "refund_fare",
            "arguments": {"amount": amount, "currency": currency, "booking_id": booking},
        },
        "rationale": {"text": "the fare of a cancelled flight"},
    }


def test_a_unit_action_is_decided_on_authority_in_its_unit(store):
    g = guard(store)
    small = g.decide(miles(5000))
    assert small.outcome is Outcome.ALLOW
    assert small.amount == Money.of(5000, "MILES")
    above = g.decide(miles(5001, booking="B-2"))
    assert above.outcome is Outcome.ROUTE
    assert above.required_role == "tier1"
    assert "discretion.standard-authority" in above.rules
    top = g.decide(miles(20001, booking="B-3"))
    assert top.required_role == "supervisor"
    with store.engine.connect() as connection:
        recorded = connection.execute(
            select(decisions.c.currency, decisions.c.amount_minor).where(decisions.c.id == small.id)
        ).one()
    assert tuple(recorded) == ("MILES", 5000)
    assert store.verify() >= 3  # the decisions and their routed cases, every row as recorded


def test_a_total_in_the_unit_counts_only_its_unit(store):
    g = guard(store)
    supervisor = Actor(id="sam", role="supervisor", is_ai=False)
    assert g.decide(miles(45000, actor=supervisor)).outcome is Outcome.ALLOW
    # The miles on the booking are not money: the fare refund is measured on refunds alone.
    assert g.decide(fare("90.00")).outcome is Outcome.ALLOW
    denied = g.decide(miles(5001))
    assert denied.outcome is Outcome.DENY
    assert denied.rules == ["miles.per-booking"]
    assert g.decide(miles(5000)).outcome is Outcome.ALLOW


def test_a_unit_budget_and_a_money_budget_are_kept_apart(store):
    g = guard(store)
    assert g.decide(miles(5000, booking="B-1")).outcome is Outcome.ALLOW
    over = g.decide(miles(3001, booking="B-2"))
    assert over.outcome is Outcome.ROUTE
    assert "ai-miles-daily" in over.rules
    assert over.required_role == "tier1"
    # 8,000 miles spent take nothing from the 150.00 a day the agent may refund.
    assert g.decide(fare("100.00", booking="B-3")).outcome is Outcome.ALLOW
    with store.engine.connect() as connection:
        kept = connection.execute(
            select(
                reservations.c.budget_id, reservations.c.currency, reservations.c.amount_minor
            ).order_by(reservations.c.budget_id)
        ).all()
    assert [tuple(row) for row in kept] == [
        ("ai-miles-daily", "MILES", 5000),
        ("ai-money-daily", "EUR", 10000),
    ]


def test_miles_on_a_booking_do_not_make_its_money_totals_mixed(store):
    g = guard(store)
    assert g.decide(miles(100)).outcome is Outcome.ALLOW
    refund = g.decide(fare("50.00", "GBP"))
    assert refund.outcome is Outcome.ALLOW
    assert "discretion.currency-mismatch" not in refund.rules


@pytest.mark.parametrize(
    ("proposal", "field", "says"),
    [
        (miles(100, currency="EUR"), "currency", "counts MILES"),
        (miles("100.5"), "amount", "more decimal places than MILES"),
        (miles(0), "amount", "is zero"),
        (fare("10", "MILES"), "currency", "moves money"),
    ],
)
def test_an_amount_of_the_wrong_kind_is_refused(store, proposal, field, says):
    with pytest.raises(ProposalError, match=says) as caught:
        guard(store).decide(proposal)
    assert caught.value.field == field


def test_a_routed_unit_case_is_approved_in_its_unit(store):
    g = guard(store)
    routed = g.decide(miles(12000))
    assert routed.required_role == "tier1"
    with pytest.raises(ProposalError, match="MILES"):
        g.approvals.approve(routed.id, approver=TIER1, note="in euros", amount=Money.of(10, "EUR"))
    approval = g.approvals.approve(
        routed.id, approver=TIER1, note="five hours late", amount=Money.of(10000, "MILES")
    )
    assert approval.amount == Money.of(10000, "MILES")
    assert approval.requested_amount == Money.of(12000, "MILES")


def _pack(tmp_path: Path, old: str, new: str) -> Path:
    text = UNITS.read_text()
    assert old in text
    path = tmp_path / "pack.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("    unit: MILES\n", "    unit: POINTS\n", "counts 'POINTS', which the pack does not"),
        (
            "        amount: miles\n",
            "        amount: miles\n        currency: currency\n",
            "maps a currency, but action 'award_miles' counts MILES",
        ),
        ('award_miles: {standard: "5000"}', "award_miles: {standard: {EUR: '5000'}}", "one amount"),
        (
            "    actions: [award_miles]\n    limit",
            "    actions: [award_miles, refund]\n    limit",
            "different kinds",
        ),
        (
            "    actions: [award_miles]\n    per",
            "    actions: [award_miles, refund]\n    per",
            "different kinds",
        ),
        (
            "reads: [booking.miles_awarded]",
            "reads: [booking.miles_awarded, booking.refunded]",
            "sums money",
        ),
        ("  MILES: {places: 0", "  GBP: {places: 0", "ISO 4217"),
        (
            "        when: booking.miles_awarded + amount > 50000",
            "        when: amount > amounts.big",
            "amounts",
        ),
    ],
)
def test_a_unit_pack_fault_fails_at_load_naming_it(tmp_path, old, new, says):
    path = _pack(tmp_path, old, new)
    if "amounts.big" in new:
        path.write_text(path.read_text() + 'amounts:\n  big: "100.00"\n')
    with pytest.raises(PolicyError, match=says):
        load_pack(path)


def test_one_unit_name_has_one_number_of_places(tmp_path):
    load_pack(UNITS)
    with pytest.raises(PolicyError, match="already counted with 0 places"):
        load_pack(_pack(tmp_path, "MILES: {places: 0", "MILES: {places: 2"))


def test_a_unit_action_reads_money_facts_in_their_own_currency(store, tmp_path):
    path = _pack(
        tmp_path,
        "    reads: [booking.miles_awarded]\n",
        "    reads: [booking.miles_awarded, booking.fare]\n",
    )
    path.write_text(
        path.read_text().replace(
            '      - id: miles.goodwill\n        when: "true"',
            "      - id: miles.goodwill\n        when: amount <= booking.fare / 10",
        )
    )
    g = guard(store, path)
    # The fare is EUR 300.00, 30,000 cents: up to 3,000 miles inside standard policy.
    assert g.decide(miles(3000)).outcome is Outcome.ALLOW
    beyond = g.decide(miles(3001, booking="B-2"))
    # Outside standard policy, and no exception reason: decided on the fare, not refused it.
    assert beyond.outcome is Outcome.DENY
    assert beyond.rules == ["discretion.not-standard", "discretion.no-exceptions"]


def test_a_governed_unit_tool_runs_with_the_amount_approved_in_its_unit(store):
    g = guard(store)
    ran: list[Any] = []

    @g.governed(actor=BOT)
    def award_miles(miles: int, booking_id: str) -> str:
        ran.append(miles)
        return f"awarded {miles}"

    assert award_miles(4000, "B-1") == "awarded 4000"
    with pytest.raises(CallRouted) as caught:
        award_miles(9000, "B-2")
    g.approvals.approve(
        caught.value.approval_id, approver=TIER1, note="late", amount=Money.of(7000, "MILES")
    )
    assert award_miles(9000, "B-2") == "awarded 7000"
    assert ran == [4000, 7000]


MILES_ONLY = """
pack: miles-only
currency: EUR
units:
  MILES: {places: 0}
roles:
  - id: ai_agent
    ai: true
    authority: {award_miles: {standard: "5000"}}
  - id: tier1
    authority: {award_miles: {standard: "50000"}}
actions:
  award_miles:
    unit: MILES
    tools:
      - {name: award_miles, amount: miles}
    standard:
      - {id: goodwill, when: "true"}
"""


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ('budgets:\n  - {id: daily, key: actor, window: 1d, limit: "60000"}\n', "cap nothing"),
        ("totals:\n  miles.given: {per: actor, window: 1d}\n", "sum nothing"),
    ],
)
def test_a_budget_or_total_that_names_no_actions_in_a_pack_of_units_only_fails(
    tmp_path, extra, says
):
    path = tmp_path / "pack.yaml"
    path.write_text(MILES_ONLY + extra)
    with pytest.raises(PolicyError, match=says):
        load_pack(path)


def test_a_money_budget_is_keyed_by_what_the_money_actions_read(tmp_path):
    # Only the refund reads booking.id: the miles award, which the budget does not count,
    # need not.
    path = _pack(
        tmp_path,
        "  - id: ai-money-daily\n    key: actor\n",
        "  - id: ai-money-daily\n    key: booking.id\n",
    )
    path.write_text(
        path.read_text().replace(
            "    reads: [booking.fare, booking.refunded]\n",
            "    reads: [booking.fare, booking.refunded, booking.id]\n",
        )
    )
    budget = next(b for b in load_pack(path).budgets if b.id == "ai-money-daily")
    assert budget.actions == frozenset({"refund"})


def verify_in_a_fresh_process(db: str) -> subprocess.CompletedProcess[str]:
    """`discretion ledger verify` in a process that loaded no pack."""
    return subprocess.run(
        [sys.executable, "-m", "discretion.cli", "ledger", "verify", "--db", db],
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_ledger_holding_units_verifies_in_a_process_that_loaded_no_pack(tmp_path):
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = SqlStore(db)
    g = guard(store)
    g.decide(miles(2000))
    store.close()
    done = verify_in_a_fresh_process(db)
    assert done.returncode == 0, done.stderr
    assert "ok 1 records" in done.stdout


def test_a_reason_of_a_unit_action_bounds_no_precedent_by_a_ratio_of_money(tmp_path):
    path = _pack(
        tmp_path,
        '      - id: miles.goodwill\n        when: "true"\n',
        '      - id: miles.goodwill\n        when: "true"\n'
        '    exceptions:\n      - id: miles.delay\n        when: "true"\n'
        "        precedent: {max_expiry: 30d, ratio_of: booking.fare}\n",
    )
    with pytest.raises(PolicyError, match="drop ratio_of"):
        load_pack(path)


def test_metrics_give_a_budget_a_series_in_its_own_kind_only(store):
    g = guard(store)
    g.decide(miles(1000))
    g.decide(fare("20.00"))
    with TestClient(create_app(g, open_metrics=True)) as client:
        text = client.get("/metrics").text
    reserved = {
        (sample.labels["budget"], sample.labels["currency"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "discretion_budget_reserved_minor_units"
    }
    assert reserved == {
        ("ai-miles-daily", "MILES"): 1000,
        ("ai-money-daily", "EUR"): 2000,
        ("ai-money-daily", "GBP"): 0,
    }


ON_THEIR_WORD = """
asserted:
  customer.missed_connection:
    type: bool
    unlocks: {units: {MILES: "3000"}}
"""


def test_an_assertion_unlocks_a_count_of_the_unit_on_the_customers_word_alone(store, tmp_path):
    path = _pack(
        tmp_path,
        "    reads: [booking.miles_awarded]\n",
        "    reads: [booking.miles_awarded, asserted.customer.missed_connection]\n",
    )
    path.write_text(
        path.read_text().replace(
            '      - id: miles.goodwill\n        when: "true"',
            "      - id: miles.goodwill\n        when: asserted.customer.missed_connection",
        )
        + ON_THEIR_WORD
    )
    g = guard(store, path)

    def said(count: int, booking: str) -> dict[str, Any]:
        proposal = miles(count, booking=booking)
        proposal["rationale"]["asserted"] = {"customer.missed_connection": True}
        return proposal

    assert g.decide(said(3000, "B-1")).outcome is Outcome.ALLOW
    above = g.decide(said(3001, "B-2"))
    # Within the agent's 5,000 miles, but above what the customer's word unlocks.
    assert above.outcome is Outcome.ROUTE
    assert "discretion.asserted.unlock-exceeded" in above.rules
    assert above.required_role == "tier1"


def test_an_assertion_capped_in_money_only_is_refused_for_a_unit_action(tmp_path):
    path = _pack(
        tmp_path,
        "    reads: [booking.miles_awarded]\n",
        "    reads: [booking.miles_awarded, asserted.customer.missed_connection]\n",
    )
    path.write_text(
        path.read_text()
        + ON_THEIR_WORD.replace('{units: {MILES: "3000"}}', '{max_amount: "30.00"}')
    )
    with pytest.raises(PolicyError, match=r"says nothing in MILES: give its cap there too"):
        load_pack(path)


def test_a_unit_of_two_places_verifies_and_a_tampered_amount_does_not(tmp_path):
    path = tmp_path / "points.yaml"
    path.write_text(
        MILES_ONLY.replace("MILES: {places: 0}", "PTS2: {places: 2}")
        .replace("unit: MILES", "unit: PTS2")
        .replace('standard: "5000"', 'standard: "50.00"')
        .replace('standard: "50000"', 'standard: "500.00"')
    )
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = SqlStore(db)
    g = Guard(load_pack(path), store=store, context=Bookings(), clock=FakeClock(NOW))
    assert g.decide(
        {
            "actor": BOT.model_dump(),
            "tool": {"name": "award_miles", "arguments": {"miles": "12.50"}},
        }
    ).amount == Money.of("12.50", "PTS2")

    assert verify_in_a_fresh_process(db).returncode == 0
    with store.engine.begin() as connection:
        connection.execute(update(decisions).values(amount_minor=12))
    store.close()
    tampered = verify_in_a_fresh_process(db)
    assert tampered.returncode != 0
    assert "amount_minor" in tampered.stdout + tampered.stderr


def test_a_row_edited_to_name_a_unit_is_named_by_verify_not_taken_for_the_unit(tmp_path):
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = SqlStore(db)
    g = guard(store)
    refunded = g.decide(fare("20.00"))  # recorded first, in euros
    g.decide(miles(1000, booking="B-2"))
    with store.engine.begin() as connection:
        connection.execute(
            update(decisions).where(decisions.c.id == refunded.id).values(currency="MILES")
        )
    store.close()
    done = verify_in_a_fresh_process(db)
    assert done.returncode == 1, done.stdout + done.stderr
    assert refunded.id in done.stdout + done.stderr
