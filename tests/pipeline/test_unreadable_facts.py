"""A fact that cannot be assembled routes the case, unless a hard limit denies it without it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from conftest import SHOP_PACK, Counter, good_facts, refund
from discretion import Actor, Outcome, load_pack
from discretion.context import ContextRequest
from discretion.errors import StaleApproval

FRAUD = {"customer.fraud_flag": True}


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ({"order.total": {"amount": "120.00", "currency": "CAD"}}, "currency mismatch"),
        (
            {"order.total": "a lot"},
            "'order.total' should be money ({'amount': '12.50', 'currency': 'USD'})",
        ),
        # Shaped as money: the cause says what is wrong with it.
        (
            {"order.total": {"amount": "120.001", "currency": "USD"}},
            "'order.total' is not money it can hold: 120.001 has more decimal places than USD",
        ),
        ({"order.total": None}, "'order.total' is missing"),
    ],
    ids=["another-currency", "ill-typed", "too-many-places", "missing"],
)
def test_a_hard_limit_that_holds_denies_though_another_fact_cannot_be_read(
    make_guard, store, fault, said
):
    decision = make_guard(good_facts(**FRAUD, **fault)).decide(refund("20.00"))

    assert (decision.outcome, decision.rules) == (Outcome.DENY, ["fraud-flag"])
    assert any(said in cause for cause in decision.causes)
    body = store.decision_body(decision.id)
    assert body is not None
    # The facts it was denied on are on record; the one that could not be read is not.
    assert body["context"]["customer.fraud_flag"] is True
    assert "order.total" not in body["context"]


def test_without_a_hard_limit_that_holds_an_unreadable_fact_still_routes(make_guard, store):
    facts = good_facts(**{"order.total": {"amount": "120.00", "currency": "CAD"}})
    decision = make_guard(facts).decide(refund("20.00"))

    assert (decision.outcome, decision.rules) == (Outcome.ROUTE, ["discretion.context-unavailable"])
    assert "currency mismatch" in decision.causes[0]
    body = store.decision_body(decision.id)
    assert body is not None
    assert body["context"] == {}


def test_a_fact_in_another_currency_is_present_to_has(tmp_path, make_guard):
    # The order total is on record, in CAD: a limit on its absence must not take it for none.
    source = SHOP_PACK.read_text(encoding="utf-8")
    path = tmp_path / "nullable-total.yaml"
    path.write_text(
        source.replace("  order.total: money\n", "  order.total: {type: money, nullable: true}\n")
        .replace(
            "      - id: fraud-flag\n",
            "      - id: no-total\n        when: '!has(order.total)'\n      - id: fraud-flag\n",
        )
        .replace("amount > order.total + order.shipping", "false"),
        encoding="utf-8",
    )
    pack = load_pack(path)
    facts = good_facts(**{"order.total": {"amount": "120.00", "currency": "CAD"}})
    decision = make_guard(facts, policy=pack).decide(refund("20.00"))
    assert (decision.outcome, decision.rules) == (Outcome.ROUTE, ["discretion.context-unavailable"])

    missing = make_guard(
        good_facts(**{"order.total": None}), policy=pack, ids=Counter("other")
    ).decide(refund("20.00", key="k-2"))
    assert (missing.outcome, missing.rules) == (Outcome.DENY, ["no-total"])


class Failing:
    """A provider that fails every fetch, counting them."""

    in_process = True

    def __init__(self) -> None:
        self.calls = 0

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        self.calls += 1
        raise TimeoutError("case system did not answer")


def test_a_provider_that_fails_is_asked_once_and_the_case_routes(make_guard):
    provider = Failing()
    decision = make_guard(context=provider).decide(refund("20.00"))

    assert (decision.outcome, decision.rules) == (Outcome.ROUTE, ["discretion.context-unavailable"])
    assert provider.calls == 1


def test_preview_and_decide_agree_on_a_deny_without_every_fact(make_guard):
    guard = make_guard(good_facts(**FRAUD, **{"order.total": "a lot"}))
    previewed = guard.preview(refund("20.00"))
    decided = guard.decide(refund("20.00"))
    assert (previewed.outcome, previewed.rules) == (decided.outcome, decided.rules)
    assert decided.outcome is Outcome.DENY


class Switching:
    """Good facts until `facts` is changed: what an approval's re-check reads later."""

    in_process = True

    def __init__(self) -> None:
        self.facts = good_facts(**{"shipment.status": "lost"})

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        return self.facts


def test_an_approvals_recheck_on_an_unreadable_fact_fails_naming_it(make_guard):
    provider = Switching()
    guard = make_guard(context=provider)
    routed = guard.decide(refund("100.00"))
    assert routed.outcome is Outcome.ROUTE

    provider.facts = good_facts(
        **{"shipment.status": "lost", "order.total": {"amount": "120.00", "currency": "CAD"}}
    )
    approver = Actor(id="tina", role="tier1", is_ai=False)
    # Money in another currency does not come right by waiting: the approver is told to reject.
    with pytest.raises(
        StaleApproval,
        match=r"cannot be re-checked \(currency mismatch: context field 'order.total'",
    ) as caught:
        guard.approvals.approve(routed.id, approver=approver, note="ok")
    assert "reject it: the agent may propose it in CAD" in str(caught.value)
    provider.facts = good_facts(**{"shipment.status": "lost", "order.total": "a lot"})
    with pytest.raises(StaleApproval, match="the facts to re-check it cannot be read now"):
        guard.approvals.approve(routed.id, approver=approver, note="ok")
