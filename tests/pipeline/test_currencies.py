"""Packs in several currencies: limits per currency, or once in a base at a rate fact."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import NOW, Counter, FakeClock
from discretion import (
    Actor,
    ApprovalError,
    Guard,
    Money,
    Outcome,
    PolicyError,
    ProposalError,
    StaleApproval,
    load_pack,
)
from discretion.context import ContextRequest, StaticContextProvider
from discretion.precedent import PrecedentSpec
from discretion.precedent._model import Range

HERE = Path(__file__).resolve().parent.parent
PER_CURRENCY = HERE / "packs" / "currencies.yaml"
RATED = HERE / "packs" / "rated.yaml"
BOT = Actor(id="bot-1", role="ai_agent")


class Orders:
    """Every order belongs to c-1, paid in the currency a proposal names; rates by currency."""

    in_process = True

    def __init__(self, rates: Mapping[str, Any] | None = None) -> None:
        self.rates = dict(rates or {})

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        facts: dict[str, Any] = {"customer.id": "c-1", "customer.tier": "gold"}
        if request.order_id is not None:
            facts |= {"order.id": request.order_id, "order.customer_id": "c-1"}
            facts["order.total"] = {"amount": "900000", "currency": request.currency}
        if request.currency in self.rates:
            facts["fx.rate_to_usd"] = self.rates[request.currency]
        return facts


def guard(store, pack: Path, context: Orders | None = None) -> Guard:
    return Guard(
        load_pack(pack),
        store=store,
        context=context or Orders(),
        clock=FakeClock(NOW),
        ids=Counter(),
    )


def refund(
    amount: str,
    currency: str,
    *,
    key: str,
    order: str = "o-1",
    reason: str | None = None,
    asserted: dict[str, Any] | None = None,
) -> dict[str, Any]:
    rationale: dict[str, Any] = {"reason": reason} if reason else {}
    if asserted:
        rationale["asserted"] = asserted
    return {
        "actor": BOT.model_dump(),
        "tool": {
            "name": "issue_refund",
            "arguments": {
                "amount": amount,
                "currency": currency,
                "order_id": order,
                "customer_id": "c-1",
            },
        },
        "rationale": rationale,
        "idempotency_key": key,
    }


@pytest.mark.parametrize(
    ("currency", "at_limit", "over"),
    [("USD", "100.00", "100.01"), ("EUR", "90.00", "90.01"), ("JPY", "13000", "13001")],
)
def test_each_currency_is_decided_against_its_own_limit(store, currency, at_limit, over):
    one = guard(store, PER_CURRENCY)

    # Routed first: approved after the allowed one, it would go beyond the customer's daily
    # budget (150.00), which only the top rung may do.
    routed = one.decide(refund(over, currency, key="b", order="o-2"))
    allowed = one.decide(refund(at_limit, currency, key="a", order="o-1"))

    assert allowed.outcome is Outcome.ALLOW
    assert allowed.rules == ["any-refund"]
    assert routed.outcome is Outcome.ROUTE
    assert routed.required_role == "tier1"


def test_a_jpy_amount_with_decimals_is_refused_naming_the_currency(store):
    with pytest.raises(ProposalError, match=r"more decimal places than JPY allows \(0\)"):
        guard(store, PER_CURRENCY).decide(refund("100.5", "JPY", key="a"))


def test_a_currency_the_pack_does_not_declare_is_refused(store):
    with pytest.raises(ProposalError, match=r"GBP is not one of the pack's currencies"):
        guard(store, PER_CURRENCY).decide(refund("10.00", "GBP", key="a"))


def test_a_budget_is_one_cap_across_currencies_each_counting_its_share(store):
    # "150.00 a customer a day" stated as USD 150.00 and EUR 140.00 is one cap: USD 140.00 is
    # 14/15 of it, which leaves EUR 9.33 (a fifteenth of 140.00 is 9.333...), not EUR 140.00.
    one = guard(store, PER_CURRENCY)
    for n, order in enumerate(("o-1", "o-2")):
        assert one.decide(refund("70.00", "USD", key=f"u{n}", order=order)).outcome is (
            Outcome.ALLOW
        )

    over = one.decide(refund("10.01", "USD", key="u3", order="o-3"))
    too_many_euros = one.decide(refund("9.34", "EUR", key="e0", order="o-4"))
    in_euros = one.decide(refund("9.33", "EUR", key="e1", order="o-5"))
    over_in_euros = one.decide(refund("0.01", "EUR", key="e2", order="o-6"))

    assert over.outcome is Outcome.ROUTE
    assert "customer-daily" in over.rules
    assert too_many_euros.outcome is Outcome.ROUTE
    assert "customer-daily" in too_many_euros.rules
    assert in_euros.outcome is Outcome.ALLOW
    assert [(r.budget, str(r.amount)) for r in in_euros.reservations] == [
        ("customer-daily", "EUR 9.33")
    ]
    assert over_in_euros.outcome is Outcome.ROUTE
    assert "customer-daily" in over_in_euros.rules


def test_a_budget_with_currencies_each_is_a_cap_per_currency(store, tmp_path):
    path = tmp_path / "pack.yaml"
    path.write_text(
        PER_CURRENCY.read_text(encoding="utf-8").replace(
            "    actions: [refund]\n    limit: {USD",
            "    actions: [refund]\n    currencies: each\n    limit: {USD",
        ),
        encoding="utf-8",
    )
    one = guard(store, path)
    for n, order in enumerate(("o-1", "o-2")):
        assert one.decide(refund("70.00", "USD", key=f"u{n}", order=order)).outcome is (
            Outcome.ALLOW
        )

    over = one.decide(refund("10.01", "USD", key="u3", order="o-3"))
    in_euros = one.decide(refund("90.00", "EUR", key="e1", order="o-4"))
    at_euro_limit = one.decide(refund("50.00", "EUR", key="e2", order="o-5"))
    over_in_euros = one.decide(refund("0.01", "EUR", key="e3", order="o-6"))

    assert over.outcome is Outcome.ROUTE
    assert "customer-daily" in over.rules
    assert in_euros.outcome is Outcome.ALLOW
    assert at_euro_limit.outcome is Outcome.ALLOW
    assert over_in_euros.outcome is Outcome.ROUTE
    assert "customer-daily" in over_in_euros.rules


def test_a_budget_across_currencies_with_rates_is_kept_in_the_base(store, tmp_path):
    path = tmp_path / "pack.yaml"
    path.write_text(
        RATED.read_text(encoding="utf-8").replace("    currencies: each\n", ""),
        encoding="utf-8",
    )
    one = guard(store, path, Orders({"EUR": "1.25", "USD": "1"}))

    # EUR 60.00 at 1.25 is USD 75.00 of the USD 150.00 a day; EUR 0.01 is USD 0.0125,
    # reserved rounded up as USD 0.02.
    euros = one.decide(refund("60.00", "EUR", key="a", order="o-1"))
    cent = one.decide(refund("0.01", "EUR", key="b", order="o-2"))
    dollars = one.decide(refund("74.98", "USD", key="c", order="o-3"))
    over = one.decide(refund("0.01", "USD", key="d", order="o-4"))

    assert euros.outcome is Outcome.ALLOW
    assert [(r.budget, str(r.amount)) for r in euros.reservations] == [
        ("customer-daily", "USD 75.00")
    ]
    assert [str(r.amount) for r in cent.reservations] == ["USD 0.02"]
    assert dollars.outcome is Outcome.ALLOW
    assert over.outcome is Outcome.ROUTE
    assert "customer-daily" in over.rules


def test_cumulative_authority_is_measured_in_the_proposals_currency(store):
    one = guard(store, PER_CURRENCY)

    first = one.decide(refund("60.00", "EUR", key="a"))
    second = one.decide(refund("30.00", "EUR", key="b"))
    third = one.decide(refund("0.01", "EUR", key="c"))

    assert first.outcome is Outcome.ALLOW
    assert second.outcome is Outcome.ALLOW
    assert third.outcome is Outcome.ROUTE
    assert third.required_role == "tier1"


def test_a_split_across_currencies_on_one_order_routes_instead_of_adding_minor_units(store):
    one = guard(store, PER_CURRENCY)

    usd = one.decide(refund("60.00", "USD", key="a"))
    eur = one.decide(refund("50.00", "EUR", key="b"))

    assert usd.outcome is Outcome.ALLOW
    assert eur.outcome is Outcome.ROUTE
    assert eur.rules == ["discretion.currency-mismatch"]
    # Only the top human rung can approve it: it goes there, not to a lower queue.
    assert eur.required_role == "manager"
    assert "currency mismatch" in " ".join(eur.causes)


def credit(amount: str, currency: str, *, key: str) -> dict[str, Any]:
    return {
        "actor": BOT.model_dump(),
        "tool": {
            "name": "issue_credit",
            "arguments": {"amount": amount, "currency": currency, "customer_id": "c-1"},
        },
        "rationale": {
            "reason": "damaged-goodwill",
            "asserted": {"customer.stated_reason": "damaged"},
        },
        "idempotency_key": key,
    }


@pytest.mark.parametrize(
    ("currency", "at_unlock", "over_unlock", "in_band"),
    [("EUR", "25.00", "25.01", "30.00"), ("JPY", "4000", "4001", "4500")],
)
def test_unlocks_and_judge_bands_are_per_currency(store, currency, at_unlock, over_unlock, in_band):
    one = guard(store, PER_CURRENCY)

    allowed = one.decide(credit(at_unlock, currency, key="a"))
    unlock_exceeded = one.decide(credit(over_unlock, currency, key="b"))
    # From the band's minimum the LLM judge reviews it; without one the case routes.
    reviewed = one.decide(credit(in_band, currency, key="c"))

    assert allowed.outcome is Outcome.ALLOW_EXCEPTION
    assert unlock_exceeded.outcome is Outcome.ROUTE
    assert "discretion.asserted.unlock-exceeded" in unlock_exceeded.rules
    assert reviewed.outcome is Outcome.ROUTE
    assert "discretion.asserted.unlock-exceeded" in reviewed.rules


def test_a_rate_converts_rounding_the_amount_up(store):
    one = guard(store, RATED, Orders({"EUR": "1.25", "JPY": "0.0067", "USD": "1"}))

    # USD 100.00 is EUR 80.00 at 1.25; EUR 80.01 is USD 100.0125, which is above it.
    over = one.decide(refund("80.01", "EUR", key="b", order="o-2"))
    at_limit = one.decide(refund("80.00", "EUR", key="a", order="o-1"))
    # USD 100.00 at 0.0067 is JPY 14925.37...: JPY 14925 is within, JPY 14926 is not.
    yen = one.decide(refund("14925", "JPY", key="c", order="o-3"))
    more_yen = one.decide(refund("14926", "JPY", key="d", order="o-4"))
    # The daily budget of USD 150.00 is kept per currency (`currencies: each`): the euros
    # and yen are not in it.
    dollars = one.decide(refund("100.00", "USD", key="e", order="o-5"))
    over_budget = one.decide(refund("50.01", "USD", key="f", order="o-6"))

    assert at_limit.outcome is Outcome.ALLOW
    assert over.outcome is Outcome.ROUTE
    assert over.required_role == "tier1"
    assert yen.outcome is Outcome.ALLOW
    assert more_yen.outcome is Outcome.ROUTE
    assert dollars.outcome is Outcome.ALLOW
    assert over_budget.outcome is Outcome.ROUTE
    assert "customer-daily" in over_budget.rules


def test_the_rate_used_is_recorded_with_the_decisions_facts(store):
    one = guard(store, RATED, Orders({"EUR": "1.25"}))

    one.decide(refund("10.00", "EUR", key="a"))

    recorded = next(store.export())["body"]["context"]
    assert recorded["fx.rate_to_usd"] == "1.250000"


def test_a_missing_rate_routes_with_the_reason(store):
    decision = guard(store, RATED, Orders({})).decide(refund("10.00", "EUR", key="a"))

    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.context-unavailable"]
    assert "fx.rate_to_usd" in " ".join(decision.causes)
    assert decision.required_role == "manager"


@pytest.mark.parametrize(("currency", "rate"), [("EUR", "0"), ("USD", "1.1")])
def test_an_unusable_rate_routes(store, currency, rate):
    decision = guard(store, RATED, Orders({currency: rate})).decide(
        refund("10.00", currency, key="a")
    )

    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.currency-rate"]
    assert decision.required_role == "manager"


def test_with_rates_a_split_across_currencies_on_one_order_routes(store):
    one = guard(store, RATED, Orders({"EUR": "1.25", "USD": "1"}))

    usd = one.decide(refund("60.00", "USD", key="a"))
    eur = one.decide(refund("40.00", "EUR", key="b"))

    assert usd.outcome is Outcome.ALLOW
    assert eur.outcome is Outcome.ROUTE
    assert eur.rules == ["discretion.currency-mismatch"]


@pytest.mark.parametrize(
    ("currency", "at_limit", "over"),
    [("USD", "2000.00", "2000.01"), ("EUR", "1800.00", "1800.01"), ("JPY", "260000", "260001")],
)
def test_a_named_amount_is_read_in_cel_in_the_proposals_currency(store, currency, at_limit, over):
    one = guard(store, PER_CURRENCY)

    within = one.decide(refund(at_limit, currency, key="a", order="o-1"))
    denied = one.decide(refund(over, currency, key="b", order="o-2"))

    assert within.outcome is Outcome.ROUTE
    assert "too-large" not in within.rules
    assert denied.outcome is Outcome.DENY
    assert denied.rules == ["too-large"]


def test_a_named_amount_is_converted_at_the_rate_rounded_down(store):
    one = guard(store, RATED, Orders({"JPY": "0.0067"}))

    # USD 2000.00 at 0.0067 is JPY 298507.46...: JPY 298507 is within, JPY 298508 is not.
    within = one.decide(refund("298507", "JPY", key="a", order="o-1"))
    denied = one.decide(refund("298508", "JPY", key="b", order="o-2"))

    assert within.outcome is Outcome.ROUTE
    assert denied.outcome is Outcome.DENY
    assert denied.rules == ["too-large"]


def test_a_money_fact_in_another_currency_routes_as_a_currency_mismatch(store):
    class Dollars(Orders):
        def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
            facts = dict(super().fetch(request))
            facts["order.total"] = {"amount": "900.00", "currency": "USD"}
            return facts

    one = guard(store, PER_CURRENCY, Dollars())
    decision = one.decide(refund("10.00", "EUR", key="a"))

    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.context-unavailable"]
    assert decision.causes[0].startswith("currency mismatch: context field 'order.total' is in USD")
    # It will not come right by waiting: the agent is told which currency can be decided,
    # and an approver is told to reject it rather than try again.
    assert "order.total is in USD: the same proposed in USD can be decided" in (
        decision.explanation
    )
    top = Actor(id="max", role=decision.required_role, is_ai=False)
    with pytest.raises(StaleApproval, match="reject it: the agent may propose it in USD"):
        one.approvals.approve(decision.id, approver=top, note="checked")


def test_a_precedent_is_bounded_by_the_grantors_limit_in_the_decisions_currency(store):
    one = guard(store, PER_CURRENCY)
    granted = one.decide(credit("25.00", "EUR", key="a"))
    manager = Actor(id="mia", role="manager", is_ai=False)

    def spec(amount: str, currency: str) -> PrecedentSpec:
        return PrecedentSpec(
            scope={"customer.tier": "gold"},
            max_amount=Money.of(amount, currency),
            expires_at=NOW + timedelta(days=30),
            citations=3,
            note="damaged in transit",
        )

    # The manager may grant EUR 900.00 (USD 1000.00): EUR 950.00 is above it.
    with pytest.raises(ApprovalError, match=r"above what role 'manager' may grant.*EUR 900\.00"):
        one.precedents.set(granted.id, spec("950.00", "EUR"), grantor=manager)
    with pytest.raises(ProposalError, match="must be in the decision's currency EUR"):
        one.precedents.set(granted.id, spec("100.00", "USD"), grantor=manager)
    precedent = one.precedents.set(granted.id, spec("900.00", "EUR"), grantor=manager)

    assert granted.outcome is Outcome.ALLOW_EXCEPTION
    assert str(precedent.max_amount) == "EUR 900.00"


def test_a_precedent_set_in_the_base_bounds_a_case_in_another_currency_at_its_rate(store, tmp_path):
    # A manager's USD 70.00 goodwill, a precedent of up to USD 120.00: the agent cites it for a
    # EUR refund, measured in USD at the case's rate (rounded up), as the pack's limits are.
    pack = tmp_path / "rated.yaml"
    pack.write_text(
        RATED.read_text(encoding="utf-8")
        .replace('refund: {standard: "100.00"}', 'refund: {standard: "100.00", exception: "20.00"}')
        .replace(
            'refund: {standard: "5000.00"}', 'refund: {standard: "5000.00", exception: "500.00"}'
        )
        .replace("  order.total: money\n", "  order.total: money\n  customer.tier: string\n")
        .replace("reads: [order.total]", "reads: [order.total, customer.tier]")
        .replace(
            "      - id: any-refund\n",
            "      - id: any-refund\n        when: amount <= 1000\n"
            "    exceptions:\n      - id: goodwill\n"
            "        precedent: {scope: [customer.tier], max_expiry: 90d, max_citations: 10}\n",
        ),
        encoding="utf-8",
    )
    one = guard(store, pack, Orders({"EUR": "1.25", "USD": "1"}))
    manager = Actor(id="mia", role="manager", is_ai=False)
    granted = one.decide(
        {
            **refund("70.00", "USD", key="g", order="o-1", reason="goodwill"),
            "actor": manager.model_dump(),
        }
    )
    assert granted.outcome is Outcome.ALLOW_EXCEPTION
    precedent = one.precedents.set(
        granted.id,
        PrecedentSpec(
            scope={"customer.tier": "gold"},
            max_amount=Money.of("120.00", "USD"),
            expires_at=NOW + timedelta(days=30),
            citations=5,
            note="courier strike",
        ),
        grantor=manager,
    )

    def cite(amount: str, key: str) -> Any:
        proposal = refund(amount, "EUR", key=key, order=f"o-{key}", reason="goodwill")
        proposal["rationale"]["precedents"] = [precedent.id]
        return one.decide(proposal)

    # EUR 96.00 is USD 120.00 at 1.25; EUR 96.01 is USD 120.0125, above the bound.
    within, above = cite("96.00", "a"), cite("96.01", "b")
    assert within.outcome is Outcome.ALLOW_EXCEPTION
    assert "discretion.precedent.applied" in within.rules
    assert above.outcome is Outcome.ROUTE
    assert "discretion.precedent.bounds" in above.rules
    assert "EUR 96.01 (USD 120.02) is above its bound of USD 120.00" in " ".join(above.causes)
    # A scope on money is in the currency the precedent was set in: a EUR order is not in it.
    again = one.decide(
        {
            **refund("70.00", "USD", key="g2", order="o-1", reason="goodwill"),
            "actor": manager.model_dump(),
        }
    )
    ranged = one.precedents.set(
        again.id,
        PrecedentSpec(
            scope={"customer.tier": "gold", "order.total": Range(min="1.00")},
            max_amount=Money.of("120.00", "USD"),
            expires_at=NOW + timedelta(days=30),
            citations=5,
            note="any order",
        ),
        grantor=manager,
    )
    scoped = refund("11.00", "EUR", key="s", order="o-s", reason="goodwill")
    scoped["rationale"]["precedents"] = [ranged.id]
    outside = one.decide(scoped)
    assert outside.outcome is Outcome.ROUTE
    assert "discretion.precedent.scope" in outside.rules
    assert "scope order.total is in USD, the case has EUR 900000.00" in " ".join(outside.causes)
    # Without a rate for the case's currency, nothing measures it: the case routes.
    no_rate = Guard(
        load_pack(pack), store=store, context=Orders({"USD": "1"}), clock=FakeClock(NOW)
    )
    unmeasured = no_rate.decide(
        {
            **refund("10.00", "EUR", key="c", order="o-c", reason="goodwill"),
            "rationale": {"reason": "goodwill", "precedents": [precedent.id]},
        }
    )
    assert unmeasured.outcome is Outcome.ROUTE
    assert "discretion.precedent.applied" not in unmeasured.rules


def test_exposure_and_budget_metrics_are_kept_per_currency(store):
    from fastapi.testclient import TestClient
    from prometheus_client.parser import text_string_to_metric_families

    from discretion.api import create_app

    one = guard(store, PER_CURRENCY)
    assert one.decide(refund("60.00", "USD", key="a", order="o-1")).outcome is Outcome.ALLOW
    assert one.decide(refund("70.00", "EUR", key="b", order="o-2")).outcome is Outcome.ALLOW

    dollars = one.approvals.exposure(customer_id="c-1", currency="USD")
    euros = one.approvals.exposure(customer_id="c-1", currency="EUR")
    report = one.approvals.exposure_report(days=1)
    with TestClient(create_app(one, open_metrics=True)) as client:
        text = client.get("/metrics").text
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }

    assert str(dollars.granted_total) == "USD 60.00"
    assert dollars.granted == 1
    assert str(euros.granted_total) == "EUR 70.00"
    assert sorted(str(row.total) for row in report) == ["EUR 70.00", "USD 60.00"]
    reserved = "discretion_budget_reserved_minor_units"
    assert samples[(reserved, frozenset({("budget", "customer-daily"), ("currency", "EUR")}))] == (
        7000
    )
    assert samples[(reserved, frozenset({("budget", "customer-daily"), ("currency", "USD")}))] == (
        6000
    )
    # One cap across the currencies: EUR 70.00 of EUR 140.00 and USD 60.00 of 150.00.
    ratio = samples[
        ("discretion_budget_utilisation_ratio", frozenset({("budget", "customer-daily")}))
    ]
    assert ratio == pytest.approx(0.9)


def test_the_approver_is_told_limits_in_the_cases_currency(store):
    from types import SimpleNamespace

    from discretion.api._ui import for_approver

    one = guard(store, PER_CURRENCY)
    routed = one.decide(refund("90.01", "EUR", key="a"))

    said = " ".join(for_approver(SimpleNamespace(guard=one), one.approvals.get(routed.id), routed))

    assert "The ai_agent role may grant up to EUR 90.00 inside standard policy" in said
    assert "It is routed to tier1, who may grant up to EUR 270.00 inside standard policy." in said


def test_reservations_made_per_currency_count_when_a_budget_is_kept_in_the_base(store, tmp_path):
    # The same ledger, first under `currencies: each` (reserved in euros), then kept together
    # in the base: the euros reserved before count at today's rate.
    rates = Orders({"EUR": "1.25", "USD": "1"})
    each = guard(store, RATED, rates)
    assert each.decide(refund("80.00", "EUR", key="a", order="o-1")).outcome is Outcome.ALLOW
    path = tmp_path / "pack.yaml"
    path.write_text(
        RATED.read_text(encoding="utf-8").replace("    currencies: each\n", ""),
        encoding="utf-8",
    )
    together = Guard(
        load_pack(path), store=store, context=rates, clock=FakeClock(NOW), ids=Counter("later")
    )
    # EUR 80.00 is USD 100.00 of the USD 150.00: EUR 40.00 (USD 50.00) fits, EUR 40.01 does not.
    over = together.decide(refund("40.01", "EUR", key="b", order="o-2"))
    fits = together.decide(refund("40.00", "EUR", key="c", order="o-3"))
    assert over.outcome is Outcome.ROUTE
    assert "customer-daily" in over.rules
    assert fits.outcome is Outcome.ALLOW
    # In dollars the euros reserved before cannot be measured (no rate of EUR is known to a
    # proposal in USD): the budget cannot be kept, and the case routes.
    dollars = together.decide(refund("1.00", "USD", key="d", order="o-4"))
    assert dollars.outcome is Outcome.ROUTE
    assert "customer-daily" in dollars.rules


def test_two_approvals_above_is_converted_at_the_rate(store, tmp_path):
    """USD 200.00 is EUR 160.00 at 1.25: EUR 170.00 needs two people though 17000 < 20000."""
    pack = tmp_path / "rated.yaml"
    pack.write_text(
        RATED.read_text(encoding="utf-8")
        .replace(
            "    cumulative: {per: order, window: 30d}\n",
            '    cumulative: {per: order, window: 30d}\n    two_approvals_above: "200.00"\n',
        )
        # Room in the daily budget for every case, so each routes where its amount does.
        .replace('limit: "150.00"', 'limit: "1000.00"'),
        encoding="utf-8",
    )
    one = guard(store, pack, Orders({"EUR": "1.25", "USD": "1"}))

    euros = one.decide(refund("170.00", "EUR", key="a", order="o-1"))
    fewer = one.decide(refund("150.00", "EUR", key="b", order="o-2"))
    dollars = one.decide(refund("200.01", "USD", key="c", order="o-3"))

    assert (euros.outcome, euros.required_role) == (Outcome.ROUTE, "tier1")
    assert "discretion.two-approvals" in euros.rules
    assert (fewer.outcome, fewer.required_role) == (Outcome.ROUTE, "tier1")
    assert "discretion.two-approvals" not in fewer.rules
    assert "discretion.two-approvals" in dollars.rules


FEES = """
pack: fees
currencies: [EUR, CHF]
rates: {fact: fx.rate_to_eur, base: EUR}
context:
  fx.rate_to_eur: {type: decimal, places: 6}
  account.currency: string
  charge.amount: money
roles:
  - id: ai_agent
    ai: true
    authority: {refund: {standard: "30.00"}}
  - id: manager
    authority: {refund: {standard: "500.00"}}
actions:
  refund:
    tools: [{name: refund_fee, amount: amount, currency: currency}]
    reads: [account.currency, charge.amount]
    hard_limits:
      - {id: other-currency, when: currency != account.currency}
    standard:
      - {id: ok, when: amount <= charge.amount}
"""


def test_a_hard_limit_holds_in_a_rated_pack_when_a_money_fact_is_in_another_currency(
    tmp_path, store
):
    # The fee was charged in EUR; the call refunds CHF. The charge cannot be compared (it is in
    # another currency), but the hard limit reading no money denies it, as it does for a
    # proposal in the base.
    path = tmp_path / "fees.yaml"
    path.write_text(FEES, encoding="utf-8")
    facts = {
        "fx.rate_to_eur": "1.050000",
        "account.currency": "EUR",
        "charge.amount": {"amount": "40.00", "currency": "EUR"},
    }
    guard = Guard(load_pack(path), store=store, context=StaticContextProvider(facts))

    def refund(currency: str, key: str) -> dict[str, Any]:
        return {
            "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
            "tool": {"name": "refund_fee", "arguments": {"amount": "5.00", "currency": currency}},
            "idempotency_key": key,
        }

    chf = guard.decide(refund("CHF", "a"))
    assert (chf.outcome, chf.rules) == (Outcome.DENY, ["other-currency"])
    # Without a usable rate nothing is read at the rate: it routes, where no limit is needed.
    facts["fx.rate_to_eur"] = "0"
    guard = Guard(load_pack(path), store=store, context=StaticContextProvider(facts))
    unrated = guard.decide(refund("CHF", "b"))
    assert (unrated.outcome, unrated.required_role) == (Outcome.ROUTE, "manager")
    assert unrated.rules == ["discretion.currency-rate"]


def test_a_rate_on_a_record_prices_only_the_currency_it_is_the_rate_of(tmp_path, store):
    # The charge's record holds the PLN rate; a CHF proposal priced at it would be worth a
    # quarter of what it is (CHF 130.00 as EUR 29.90, under the AI's EUR 30.00).
    path = tmp_path / "fees.yaml"
    path.write_text(
        FEES.replace(
            "rates: {fact: fx.rate_to_eur, base: EUR}",
            "rates: {fact: fx.rate_to_eur, base: EUR, currency: fx.currency}",
        )
        .replace("reads: [account.currency, charge.amount]", "reads: [account.currency]")
        .replace("{id: ok, when: amount <= charge.amount}", "{id: ok}")
        .replace("currencies: [EUR, CHF]", "currencies: [EUR, CHF, PLN]")
        .replace(
            "  account.currency: string\n", "  account.currency: string\n  fx.currency: string\n"
        )
        .replace(
            "    hard_limits:\n      - {id: other-currency, when: currency != account.currency}\n",
            "",
        ),
        encoding="utf-8",
    )
    pack = load_pack(path)
    assert "fx.currency" in pack.actions["refund"].reads
    facts = {
        "fx.rate_to_eur": "0.230000",
        "fx.currency": "PLN",
        "account.currency": "PLN",
        "charge.amount": {"amount": "500.00", "currency": "PLN"},
    }
    guard = Guard(pack, store=store, context=StaticContextProvider(facts))

    def refund(amount: str, currency: str, key: str) -> dict[str, Any]:
        return {
            "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
            "tool": {
                "name": "refund_fee",
                "arguments": {"amount": amount, "currency": currency},
            },
            "idempotency_key": key,
        }

    chf = guard.decide(refund("130.00", "CHF", "a"))
    assert (chf.outcome, chf.rules) == (Outcome.ROUTE, ["discretion.currency-rate"])
    assert chf.required_role == "manager"
    assert "fx.rate_to_eur is the rate of PLN (fx.currency), not of CHF" in chf.causes[0]
    pln = guard.decide(refund("130.00", "PLN", "b"))  # EUR 29.90 at PLN's own rate
    assert (pln.outcome, pln.rules) == (Outcome.ALLOW, ["ok"])


def test_a_rates_currency_must_be_a_string_field(tmp_path):
    path = tmp_path / "fees.yaml"
    path.write_text(
        FEES.replace(
            "rates: {fact: fx.rate_to_eur, base: EUR}",
            "rates: {fact: fx.rate_to_eur, base: EUR, currency: fx.rate_to_eur}",
        ),
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match=r"rates currency 'fx\.rate_to_eur' must be a context"):
        load_pack(path)


def test_a_rate_of_another_currency_routes_to_the_top_though_a_money_fact_is_unreadable(
    tmp_path, store
):
    # The charge (PLN) cannot be compared with a CHF proposal, and the rate on record is PLN's:
    # no limit is known in CHF, so the top rung decides, not the lowest the CHF amount would
    # reach were it EUR.
    path = tmp_path / "fees.yaml"
    path.write_text(
        FEES.replace(
            "rates: {fact: fx.rate_to_eur, base: EUR}",
            "rates: {fact: fx.rate_to_eur, base: EUR, currency: fx.currency}",
        )
        .replace("currencies: [EUR, CHF]", "currencies: [EUR, CHF, PLN]")
        .replace(
            "  account.currency: string\n", "  account.currency: string\n  fx.currency: string\n"
        )
        .replace(
            "{id: other-currency, when: currency != account.currency}", "{id: never, when: 'false'}"
        ),
        encoding="utf-8",
    )
    facts = {
        "fx.rate_to_eur": "0.230000",
        "fx.currency": "PLN",
        "account.currency": "PLN",
        "charge.amount": {"amount": "500.00", "currency": "PLN"},
    }
    guard = Guard(load_pack(path), store=store, context=StaticContextProvider(facts))
    chf = guard.decide(
        {
            "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
            "tool": {"name": "refund_fee", "arguments": {"amount": "20.00", "currency": "CHF"}},
            "idempotency_key": "a",
        }
    )
    assert (chf.outcome, chf.rules) == (Outcome.ROUTE, ["discretion.currency-rate"])
    assert chf.required_role == "manager"
    assert any("charge.amount" in cause for cause in chf.causes)
