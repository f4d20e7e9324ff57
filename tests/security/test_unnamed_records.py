"""A fact of a record the proposal does not name is unknown, never absent.

An optional fact (`has(order.chargeback)`) of an order the agent leaves out was read as absent:
the agent chose the outcome by omitting an id, a deny turned into an allow.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from discretion import Guard, Outcome, SqlStore, load_pack
from discretion.context import (
    ChainedContext,
    JsonContextProvider,
    SqliteCaseStore,
    StaticContextProvider,
    TimeoutContext,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

PACK = """
pack: unnamed
currency: USD
entities:
  customer: {}
  order: {belongs_to: [customer]}
  case: {belongs_to: [customer, order]}
records:
  chargeback:
    fields: {opened_at: timestamp}
context:
  customer.fraud_hold: bool
  order.chargeback: {type: chargeback, optional: true}
roles:
  - id: ai_agent
    ai: true
    authority: {refund: {standard: "100.00"}}
  - id: manager
    authority: {refund: {standard: "1000.00"}}
actions:
  refund:
    tools:
      - {name: refund_order, amount: amount, customer: customer_id, order: order_id, case: case_id}
    reads: [customer.fraud_hold, order.chargeback]
    hard_limits:
      - id: open-chargeback
        when: has(order.chargeback)
    standard:
      - id: no-chargeback
        when: "!has(order.chargeback)"
"""


def refund(**ids: str) -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
        "tool": {"name": "refund_order", "arguments": {"amount": "40.00", **ids}},
    }


def test_an_optional_fact_of_an_order_left_out_is_unknown_not_absent(
    tmp_path: Path, store: SqlStore
) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    context = StaticContextProvider(
        customers={"C-1": {"customer.id": "C-1", "customer.fraud_hold": False}},
        orders={
            "O-1": {
                "order.customer_id": "C-1",
                "order.chargeback": {"opened_at": "2026-11-20T09:00:00+00:00"},
            },
            "O-2": {"order.customer_id": "C-1"},
        },
        cases={
            "K-1": {"case.customer_id": "C-1", "case.order_id": "O-1"},
            "K-2": {"case.customer_id": "C-1", "case.order_id": None},
        },
    )
    guard = Guard(load_pack(path), store=store, context=context, clock=lambda: NOW)

    named = guard.decide(refund(customer_id="C-1", order_id="O-1"))
    unnamed = guard.decide(refund(customer_id="C-1"))
    clean = guard.decide(refund(customer_id="C-1", order_id="O-2"))

    assert (named.outcome, named.rules) == (Outcome.DENY, ["open-chargeback"])
    # Leaving the order out does not make its chargeback go away: a person looks.
    assert (unnamed.outcome, unnamed.rules) == (Outcome.ROUTE, ["discretion.context-unavailable"])
    assert "names no order" in unnamed.causes[0]
    assert clean.outcome is Outcome.ALLOW
    # Through its case, the order is named; a case about no order has no order's facts.
    via_case = guard.decide(refund(customer_id="C-1", case_id="K-1"))
    no_order = guard.decide(refund(customer_id="C-1", case_id="K-2"))
    assert (via_case.outcome, via_case.rules) == (Outcome.DENY, ["open-chargeback"])
    assert (no_order.outcome, no_order.rules) == (Outcome.ALLOW, ["no-chargeback"])


STAY_PACK = """
pack: unnamed-stay
currency: EUR
entities:
  customer: {}
  order: {belongs_to: [customer]}
records:
  dispute: {fields: {status: string}}
  incident: {fields: {logged_at: timestamp}}
context:
  customer.fraud_hold: bool
  stay.dispute: {type: dispute, optional: true}
  stay.incident: {type: incident, optional: true}
roles:
  - {id: ai_agent, ai: true, authority: {credit: {standard: "100.00"}}}
  - {id: front_desk, authority: {credit: {standard: "500.00"}}}
actions:
  credit:
    tools: [{name: courtesy_credit, amount: amount, customer: member_id, order: stay_id}]
    reads: [customer.fraud_hold, stay.dispute, stay.incident]
    hard_limits:
      - {id: fraud-hold, when: customer.fraud_hold}
      - {id: no-incident-logged, when: "!has(stay.incident)"}
    standard:
      - {id: no-open-dispute, when: "!has(stay.dispute)"}
"""

STAY_FACTS = {
    "customers": {"M-1": {"customer.fraud_hold": False}, "M-2": {"customer.fraud_hold": True}},
    "orders": {
        "S-1": {
            "order.customer_id": "M-1",
            "stay.dispute": {"status": "open"},
            "stay.incident": {"logged_at": "2026-11-30T09:00:00+00:00"},
        },
        "S-2": {"order.customer_id": "M-1", "stay.incident": None},
        "S-3": {"order.customer_id": "M-2"},
    },
}


def _credit(**ids: str) -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
        "tool": {"name": "courtesy_credit", "arguments": {"amount": "50.00", **ids}},
    }


@pytest.mark.parametrize("wrapped", ["json", "chained", "timeout"])
def test_a_fact_its_provider_files_under_a_record_left_out_is_unknown(
    tmp_path: Path, store: SqlStore, wrapped: str
) -> None:
    """A fact not named after its record (`stay.dispute`, held for orders) is still the order's.

    Leaving the stay out read its open dispute as absent, and the credit was allowed.
    """
    (tmp_path / "pack.yaml").write_text(STAY_PACK, encoding="utf-8")
    (tmp_path / "facts.json").write_text(json.dumps(STAY_FACTS), encoding="utf-8")
    context: Any = JsonContextProvider(tmp_path / "facts.json")
    if wrapped == "chained":
        context = ChainedContext([StaticContextProvider(defaults={}), context])
    elif wrapped == "timeout":
        context = TimeoutContext(context, timeout_s=30.0)
    guard = Guard(
        load_pack(tmp_path / "pack.yaml"), store=store, context=context, clock=lambda: NOW
    )

    named = guard.decide(_credit(member_id="M-1", stay_id="S-1"))
    unnamed = guard.decide(_credit(member_id="M-1"))
    # Its open dispute takes the credit outside standard policy, which grants no exceptions.
    assert named.outcome is Outcome.DENY
    assert (unnamed.outcome, unnamed.rules) == (Outcome.ROUTE, ["discretion.context-unavailable"])
    assert "'stay.dispute' cannot be read: the proposal names no order" in " ".join(unnamed.causes)


def test_a_hard_limit_on_the_presence_of_an_unnamed_fact_routes_rather_than_denies(
    tmp_path: Path, store: SqlStore
) -> None:
    """`!has(stay.incident)` of a stay left out is not known to hold: a person looks.

    A hard limit holding whatever the unnamed facts are (a fraud hold) still denies.
    """
    (tmp_path / "pack.yaml").write_text(STAY_PACK, encoding="utf-8")
    context = StaticContextProvider(customers=STAY_FACTS["customers"], orders=STAY_FACTS["orders"])
    guard = Guard(
        load_pack(tmp_path / "pack.yaml"), store=store, context=context, clock=lambda: NOW
    )

    no_incident = guard.decide(_credit(member_id="M-1", stay_id="S-2"))
    unnamed = guard.decide(_credit(member_id="M-1"))
    held = guard.decide(_credit(member_id="M-2"))
    assert (no_incident.outcome, no_incident.rules) == (Outcome.DENY, ["no-incident-logged"])
    assert (unnamed.outcome, unnamed.rules) == (Outcome.ROUTE, ["discretion.context-unavailable"])
    assert unnamed.required_role == "front_desk"
    assert (held.outcome, held.rules) == (Outcome.DENY, ["fraud-hold"])


def test_the_case_store_reads_shipments_and_incidents_through_their_records() -> None:
    store = SqliteCaseStore.from_sql(Path(__file__).parents[2] / "examples/acme/cases.sql")
    assert store.records_of("shipment.status") == {"order"}
    assert store.records_of("incident.active") == {"customer"}
    assert store.records_of("order.total") == frozenset()
