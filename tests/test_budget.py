from __future__ import annotations

import pytest

from conftest import SHOP_PACK, good_facts, refund, shop_pack_with
from discretion import Actor, Money, Outcome, PolicyError, StaleApproval, load_pack


def lost():
    return good_facts(**{"shipment.status": "lost"})


def test_budget_exceeded_routes_to_its_route_to_role(make_guard):
    guard = make_guard(lost())
    # customer-exceptions-30d: 150.00 of allow_exception per customer.
    for n in range(7):
        d = guard.decide(refund("20.00", reason="carrier-lost", key=f"k{n}"))
        assert d.outcome is Outcome.ALLOW_EXCEPTION
    eighth = guard.decide(refund("20.00", reason="carrier-lost", key="k7"))
    assert eighth.outcome is Outcome.ROUTE
    assert eighth.required_role == "manager"
    assert "customer-exceptions-30d" in eighth.rules
    assert "budget" in eighth.explanation
    exactly = guard.decide(refund("10.00", reason="carrier-lost", key="k8"))
    assert exactly.outcome is Outcome.ALLOW_EXCEPTION  # 140.00 + 10.00 == 150.00


def test_budget_is_per_key(make_guard):
    guard = make_guard(lost())
    for n in range(7):
        guard.decide(refund("20.00", reason="carrier-lost", key=f"a{n}"))
    other = guard.decide(refund("20.00", reason="carrier-lost", key="b", customer="c-2"))
    assert other.outcome is Outcome.ALLOW_EXCEPTION


def test_budget_window_rolls(make_guard, clock):
    guard = make_guard(lost())
    for n in range(7):
        guard.decide(refund("20.00", reason="carrier-lost", key=f"a{n}"))
    clock.advance(days=30)
    # Exactly one window later the old reservations no longer count.
    later = guard.decide(refund("20.00", reason="carrier-lost", key="later"))
    assert later.outcome is Outcome.ALLOW_EXCEPTION


def test_budget_counts_only_its_outcomes(make_guard):
    guard = make_guard()
    d = guard.decide(refund("40.00"))
    assert d.outcome is Outcome.ALLOW
    assert {r.budget for r in d.reservations} == {"actor-daily", "org-daily-deny"}


def test_routed_decisions_reserve_nothing_by_default(make_guard):
    d = make_guard().decide(refund("80.00"))
    assert d.outcome is Outcome.ROUTE
    assert d.reservations == []


def test_budget_on_exceed_deny(make_guard, tmp_path):
    tight = make_guard(policy=shop_pack_with(tmp_path, 'limit: "100000.00"', 'limit: "50.00"'))
    assert tight.decide(refund("30.00", key="1")).outcome is Outcome.ALLOW
    second = tight.decide(refund("30.00", key="2"))
    assert second.outcome is Outcome.DENY
    assert "org-daily-deny" in second.rules
    assert second.reservations == []


def test_budget_counting_routes_raises_the_required_role_when_exceeded(tmp_path, make_guard):
    guard = make_guard(
        lost(),
        policy=shop_pack_with(
            tmp_path,
            "    outcomes: [allow_exception]\n",
            "    outcomes: [allow_exception, route]\n",
        ),
    )
    first = guard.decide(refund("100.00", reason="carrier-lost", key="1"))
    assert first.outcome is Outcome.ROUTE
    assert first.required_role == "tier1"
    assert [r.budget for r in first.reservations] == ["customer-exceptions-30d"]
    second = guard.decide(refund("100.00", reason="carrier-lost", key="2"))
    assert second.outcome is Outcome.ROUTE
    assert second.required_role == "manager"
    assert "customer-exceptions-30d" in second.rules
    assert second.reservations == []


def test_an_exempt_role_counts_against_a_budget_and_is_never_capped(make_guard, tmp_path):
    # "150.00 of exceptions a customer a month without the manager": what a manager grants
    # uses the customer's budget up for everyone else, and the manager may go beyond it.
    exempting = shop_pack_with(
        tmp_path,
        "    outcomes: [allow_exception]\n",
        "    outcomes: [allow_exception]\n    exempt: [manager]\n",
    )
    guard = make_guard(lost(), policy=exempting)
    granted = guard.decide(
        refund("100.00", reason="carrier-lost", role="manager", actor="mo", key="m1")
    )
    assert granted.outcome is Outcome.ALLOW_EXCEPTION
    reserved = {r.budget: str(r.amount) for r in granted.reservations}
    assert reserved["customer-exceptions-30d"] == "USD 100.00"
    beyond = guard.decide(
        refund("100.00", reason="carrier-lost", role="manager", actor="mo", key="m2")
    )
    assert beyond.outcome is Outcome.ALLOW_EXCEPTION
    after = guard.decide(refund("20.00", reason="carrier-lost", role="tier1", actor="t", key="t1"))
    assert after.outcome is Outcome.ROUTE
    assert "customer-exceptions-30d" in after.rules


def test_an_exempt_role_must_be_one_the_budget_counts(tmp_path):
    with pytest.raises(PolicyError, match="budget exempts role 'manager', whose proposals it"):
        shop_pack_with(
            tmp_path,
            "    outcomes: [allow_exception]\n",
            "    outcomes: [allow_exception]\n    roles: [tier1]\n    exempt: [manager]\n",
        )


def _spend_customer_exceptions(guard, total_twenties: int = 7) -> None:
    """Use 140.00 of customer-exceptions-30d (150.00 a customer) with allowed exceptions."""
    for n in range(total_twenties):
        spent = guard.decide(refund("20.00", reason="carrier-lost", key=f"spent-{n}"))
        assert spent.outcome is Outcome.ALLOW_EXCEPTION


def test_a_route_goes_where_its_approval_may_go_beyond_a_budget_the_approval_counts(make_guard):
    # 100.00 is above the agent's exception authority (tier1's case), and its approval would
    # take the customer to 240.00 of exceptions: tier1's approval would be refused by the
    # re-check, so the case goes to the budget's role (the top rung) at once.
    guard = make_guard(lost())
    _spend_customer_exceptions(guard)
    routed = guard.decide(refund("100.00", reason="carrier-lost", key="big"))
    assert routed.outcome is Outcome.ROUTE
    assert routed.required_role == "manager"
    assert routed.rules[-1] == "customer-exceptions-30d"
    assert "discretion.exception-authority" in routed.rules
    assert routed.reservations == []
    approved = guard.approvals.approve(
        routed.id, approver=Actor(id="maria", role="manager", is_ai=False), note="ok"
    )
    assert approved.status.value == "approved"


def test_a_route_with_room_left_in_the_budgets_its_approval_counts_is_unchanged(make_guard):
    guard = make_guard(lost())
    _spend_customer_exceptions(guard, total_twenties=2)
    routed = guard.decide(refund("100.00", reason="carrier-lost", key="fits"))
    assert routed.outcome is Outcome.ROUTE
    assert routed.required_role == "tier1"
    assert "customer-exceptions-30d" not in routed.rules


def test_a_route_whose_approval_a_denying_budget_leaves_no_room_for_is_denied(make_guard, tmp_path):
    denying = shop_pack_with(
        tmp_path,
        "    outcomes: [allow_exception]\n",
        "    outcomes: [allow_exception]\n    on_exceed: deny\n",
    )
    guard = make_guard(lost(), policy=denying)
    _spend_customer_exceptions(guard)
    # 10.00 of the customer's 150.00 is left: a person may still grant that much of 100.00,
    # and is told the budget refuses more.
    room = guard.decide(refund("100.00", reason="carrier-lost", key="room"))
    assert (room.outcome, room.required_role) == (Outcome.ROUTE, "tier1")
    assert room.rules[-1] == "customer-exceptions-30d"
    assert "has room for less than asked" in " ".join(room.causes)
    tina = Actor(id="tina", role="tier1", is_ai=False)
    with pytest.raises(StaleApproval, match="customer-exceptions-30d"):
        guard.approvals.approve(room.id, approver=tina, note="all of it")
    granted = guard.approvals.approve(
        room.id, approver=tina, note="what is left", amount=Money.of("10.00", "USD")
    )
    assert granted.status.value == "approved"
    # Nothing left: nobody could approve any of it.
    denied = guard.decide(refund("100.00", reason="carrier-lost", key="full"))
    assert denied.outcome is Outcome.DENY
    assert "customer-exceptions-30d" in denied.rules
    assert denied.reservations == []
    assert guard.approvals.get(room.id).status.value == "approved"
    assert guard.approvals.list(status="pending") == []


def test_a_budget_may_say_what_it_caps_and_why(make_guard, tmp_path):
    described = shop_pack_with(
        tmp_path,
        "    outcomes: [allow_exception]\n",
        "    outcomes: [allow_exception]\n    description: what support grants in a month\n",
    )
    assert described.budgets[0].id == "customer-exceptions-30d"
    assert described.budgets[0].description == "what support grants in a month"
    assert (
        make_guard(lost(), policy=described).decide(refund("20.00", reason="carrier-lost")).outcome
        is Outcome.ALLOW_EXCEPTION
    )


def test_a_spent_budget_that_counts_routes_does_not_hide_one_its_approval_would_exceed(
    make_guard, tmp_path
):
    # A cap on what routes (route_to tier1) beside a cap on exceptions that denies beyond it:
    # the route's own cap names tier1, but the customer's exceptions are used up, so nobody
    # could approve it.
    text = (
        SHOP_PACK.read_text(encoding="utf-8")
        .replace(
            "    outcomes: [allow_exception]\n",
            "    outcomes: [allow_exception]\n    on_exceed: deny\n",
        )
        .replace(
            "budgets:\n",
            'budgets:\n  - {id: routes-daily, key: customer, window: 1d, limit: "50.00",'
            " outcomes: [route], route_to: tier1}\n",
        )
    )
    path = tmp_path / "two-budgets.yaml"
    path.write_text(text, encoding="utf-8")
    guard = make_guard(lost(), policy=load_pack(path))
    _spend_customer_exceptions(guard)
    topped = guard.decide(refund("10.00", reason="carrier-lost", key="last-ten"))
    assert topped.outcome is Outcome.ALLOW_EXCEPTION
    denied = guard.decide(refund("100.00", reason="carrier-lost", key="big"))
    assert denied.outcome is Outcome.DENY
    assert {"routes-daily", "customer-exceptions-30d"} <= set(denied.rules)
