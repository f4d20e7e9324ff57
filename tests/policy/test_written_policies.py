"""What written policies reach for: CEL's bindings, math and strings libraries, and clear errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from discretion import Guard, Outcome, SqlStore, load_pack
from discretion.context import StaticContextProvider
from discretion.errors import PolicyError

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

PACK = """
pack: extensions
currency: USD
context:
  order.total: money
  order.refunded: money
  order.refunds_granted: money
  order.promised_by: timestamp
  order.delivered_at: timestamp
  customer.region: string
roles:
  - id: ai_agent
    ai: true
    authority:
      refund: {standard: "100.00", exception: "50.00"}
  - id: tier1
    authority:
      refund: {standard: "1000.00", exception: "500.00"}
actions:
  refund:
    tools:
      - name: issue_refund
        amount: amount
        currency: currency
        customer: customer_id
        order: order_id
    reads: [order.total, order.refunded, order.refunds_granted, order.promised_by,
            order.delivered_at, customer.region]
    hard_limits:
      - id: above-paid
        when: amount + math.greatest(order.refunded, order.refunds_granted) > order.total
    standard:
      - id: eu-late-delivery
        when: >-
          customer.region.lowerAscii().startsWith('eu-')
          && cel.bind(late, order.delivered_at - order.promised_by,
                      late > duration('24h') && late <= duration('720h'))
        max_amount: math.least([order.total, 4000])
"""

FACTS: dict[str, Any] = {
    "order.total": {"amount": "120.00", "currency": "USD"},
    "order.refunded": {"amount": "0.00", "currency": "USD"},
    "order.refunds_granted": {"amount": "30.00", "currency": "USD"},
    "order.promised_by": "2026-11-10T00:00:00+00:00",
    "order.delivered_at": "2026-11-13T00:00:00+00:00",
    "customer.region": "EU-West",
}


def guard(tmp_path: Path, **facts: Any) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    context = StaticContextProvider({**FACTS, **facts})
    return Guard(load_pack(path), context=context, clock=lambda: NOW)


def refund(amount: str) -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent"},
        "tool": {
            "name": "issue_refund",
            "arguments": {"amount": amount, "currency": "USD", "customer_id": "c", "order_id": "o"},
        },
    }


def test_rules_read_through_bind_math_and_strings(tmp_path: Path) -> None:
    assert guard(tmp_path).preview(refund("40.00")).rules == ["eu-late-delivery"]


@pytest.mark.parametrize(
    ("facts", "amount", "outcome", "rules"),
    [
        # math.greatest: 30.00 already granted, so 90.01 more is above the 120.00 paid.
        ({}, "90.01", Outcome.DENY, ["above-paid"]),
        # math.least: at most 40.00 under the rule however large the order.
        ({"order.total": {"amount": "900.00", "currency": "USD"}}, "40.01", Outcome.DENY, None),
        # lowerAscii: a US region is not an EU one.
        ({"customer.region": "us-east"}, "10.00", Outcome.DENY, None),
        # cel.bind: delivered a day late to the minute is not more than 24 hours late.
        ({"order.delivered_at": "2026-11-11T00:00:00+00:00"}, "10.00", Outcome.DENY, None),
    ],
)
def test_each_library_decides_its_part(
    tmp_path: Path,
    facts: dict[str, Any],
    amount: str,
    outcome: Outcome,
    rules: list[str] | None,
) -> None:
    decision = guard(tmp_path, **facts).preview(refund(amount))
    assert decision.outcome is outcome
    if rules is not None:
        assert decision.rules == rules
    else:
        assert "eu-late-delivery" not in decision.rules


def test_a_bound_name_is_not_a_fact_outside_its_bind(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(
        PACK.replace("max_amount: math.least([order.total, 4000])", "max_amount: late"),
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match="unknown field 'late'"):
        load_pack(path)


def test_a_precedent_scoped_on_a_field_inside_a_record_says_to_declare_a_fact_of_its_own(
    tmp_path: Path,
) -> None:
    text = (
        PACK.replace(
            "context:\n",
            "records:\n  outage:\n    fields: {id: string, minutes: int}\ncontext:\n"
            "  line.outage: outage\n",
        )
        .replace(
            "order.delivered_at, customer.region]",
            "order.delivered_at, customer.region,\n            line.outage]",
        )
        .replace(
            "        max_amount: math.least([order.total, 4000])\n",
            "        max_amount: math.least([order.total, 4000])\n"
            "    exceptions:\n"
            "      - id: outage-goodwill\n"
            "        when: line.outage.minutes > 60\n"
            "        precedent: {scope: [line.outage.id], max_expiry: 30d}\n",
        )
    )
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_pack(path)
    assert str(caught.value).endswith(
        "precedent scope names 'line.outage.id', a field inside the record fact 'line.outage';"
        " scope keys are whole facts: declare 'id' as a fact of its own (such as"
        " 'line.outage_id') that the action reads, and scope on it"
    )


CREDITS = """
pack: credits
currency: USD
entities:
  customer: {}
context:
  customer.tier: string
totals:
  customer.goodwill_credits:
    type: int
    actions: [credit]
    per: customer
    window: 180d
    outcomes: [allow_exception, pending, approved]
    reasons: [credit.goodwill]
roles:
  - id: ai_agent
    ai: true
    authority:
      credit: {standard: "0", exception: "50.00"}
  - id: tier1
    authority:
      credit: {standard: "100.00", exception: "100.00"}
actions:
  credit:
    tools:
      - name: apply_credit
        amount: amount
        currency: currency
        customer: customer_id
    reads: [customer.tier, customer.goodwill_credits]
    exceptions:
      - id: credit.goodwill
        when: customer.goodwill_credits == 0
      - id: credit.service-failure
        when: "true"
"""


def credit(reason: str, key: str) -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent"},
        "tool": {
            "name": "apply_credit",
            "arguments": {"amount": "20.00", "currency": "USD", "customer_id": "c-1"},
        },
        "rationale": {"reason": reason, "text": "customer asked"},
        "idempotency_key": key,
    }


def test_a_total_with_reasons_counts_only_exceptions_made_for_them(tmp_path: Path) -> None:
    path = tmp_path / "credits.yaml"
    path.write_text(CREDITS, encoding="utf-8")
    records = StaticContextProvider({"customer.id": "c-1", "customer.tier": "gold"})
    store = SqlStore(f"sqlite:///{tmp_path}/ledger.db")
    guard = Guard(load_pack(path), store=store, context=records, clock=lambda: NOW)
    # Two credits for a service failure do not use up the goodwill credit.
    for key in ("sf-1", "sf-2"):
        assert guard.decide(credit("credit.service-failure", key)).rules == [
            "discretion.not-standard",
            "credit.service-failure",
        ]
    goodwill = guard.decide(credit("credit.goodwill", "gw-1"))
    assert goodwill.outcome is Outcome.ALLOW_EXCEPTION
    again = guard.decide(credit("credit.goodwill", "gw-2"))
    # The one goodwill credit is used: the reason no longer applies, and a person may judge
    # whether another does.
    assert again.outcome is Outcome.ROUTE
    assert again.rules[:3] == [
        "discretion.not-standard",
        "discretion.reason-not-applicable",
        "credit.goodwill",
    ]
    body = store.decision_body(again.id)
    assert body is not None
    assert body["context"]["customer.goodwill_credits"] == 1


def test_a_total_counting_a_reason_no_counted_action_has_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "credits.yaml"
    path.write_text(CREDITS.replace("reasons: [credit.goodwill]", "reasons: [goodwill]"))
    with pytest.raises(PolicyError) as caught:
        load_pack(path)
    assert str(caught.value).endswith(
        "total 'customer.goodwill_credits' counts exceptions for reason 'goodwill', which is"
        " not an exception reason of the actions it counts; reasons: credit.goodwill,"
        " credit.service-failure"
    )
