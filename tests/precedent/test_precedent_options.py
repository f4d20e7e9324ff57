"""Precedent options per reason: only cited precedents count; what caps what one lets grant."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import NOW, Counter, FakeClock, ShopFacts
from discretion import Guard, Money, Outcome, PolicyError, ProposalError, SqlStore, load_pack
from discretion.policy import PolicyPack
from discretion.precedent import PrecedentSpec
from discretion.proposal import Actor

SOURCE = Path(__file__).with_name("precedent.yaml").read_text(encoding="utf-8")
CARRIER_LOST = """        precedent:
          scope: [shipment.carrier]
          max_expiry: 90d
          max_citations: 20
          ratio_of: order.total
"""
MANAGER = Actor(id="maria", role="manager", is_ai=False)
BOT = Actor(id="bot-1", role="ai_agent", is_ai=True)


def variant(folder: Path, options: str, *, ratio: bool = False) -> PolicyPack:
    """The precedent pack with `options` added to carrier-lost's precedent policy."""
    assert SOURCE.count(CARRIER_LOST) == 1
    kept = CARRIER_LOST if ratio else CARRIER_LOST.replace("          ratio_of: order.total\n", "")
    path = folder / "options.yaml"
    path.write_text(SOURCE.replace(CARRIER_LOST, kept + options), encoding="utf-8")
    return load_pack(path)


def facts() -> dict[str, Any]:
    return {
        "customer.segment": "retail",
        "customer.region": "eu-west",
        "customer.tags": ["vip"],
        "customer.fraud_flag": False,
        "shipment.status": "lost",
        "shipment.carrier": "parcelco",
        "order.total": {"amount": "120.00", "currency": "USD"},
        "order.items": 2,
        "incident.id": None,
        "incident.active": False,
    }


def proposal(amount: str, *, actor: Actor = BOT, cite: list[str] | None = None, key: str):
    return {
        "actor": actor.model_dump(),
        "tool": {
            "name": "issue_refund",
            "arguments": {"amount": amount, "customer_id": "c-2", "case_id": f"case-{key}"},
        },
        "rationale": {"reason": "carrier-lost", "precedents": cite or []},
        "idempotency_key": key,
    }


class World:
    def __init__(self, pack: PolicyPack, store: SqlStore) -> None:
        self.guard = Guard(
            pack,
            store=store,
            clock=FakeClock(NOW),
            context=ShopFacts(facts()),
            ids=Counter(),
        )

    def precedent(self, bound: str = "100.00") -> str:
        granted = self.guard.decide(proposal("80.00", actor=MANAGER, key="grant"))
        assert granted.outcome is Outcome.ALLOW_EXCEPTION, granted.rules
        spec = PrecedentSpec(
            scope={"shipment.carrier": "parcelco"},
            max_amount=Money.of(bound, "USD"),
            expires_at=NOW + timedelta(days=30),
            citations=5,
            note="ParcelCo lost a trailer at the Rotterdam depot",
        )
        return self.guard.precedents.set(granted.id, spec, grantor=MANAGER).id


def test_cited_only_ignores_a_precedent_the_actor_does_not_cite(tmp_path, sqlite_store):
    world = World(variant(tmp_path, "          cited_only: true\n"), sqlite_store)
    precedent = world.precedent()

    uncited = world.guard.decide(proposal("70.00", key="a"))
    cited = world.guard.decide(proposal("70.00", cite=[precedent], key="b"))

    # Found by scope it would apply (test_precedent_is_found_by_scope_without_being_cited).
    assert uncited.outcome is Outcome.ROUTE
    assert "discretion.exception-authority" in uncited.rules
    assert uncited.precedents is not None
    assert uncited.precedents.considered == []
    assert cited.outcome is Outcome.ALLOW_EXCEPTION
    assert cited.precedents is not None
    assert cited.precedents.applied == precedent


def test_actor_standard_limit_caps_what_a_precedent_lets_an_actor_grant(tmp_path, sqlite_store):
    world = World(variant(tmp_path, "          grants_up_to: actor_standard_limit\n"), sqlite_store)
    precedent = world.precedent()

    # The AI agent's standard refund limit is 50.00; the precedent's bound is 100.00.
    above = world.guard.decide(proposal("70.00", cite=[precedent], key="a"))
    within = world.guard.decide(proposal("45.00", cite=[precedent], key="b"))

    assert above.outcome is Outcome.ROUTE
    assert "discretion.precedent.actor-standard-limit" in above.rules
    assert above.precedents is not None
    assert above.precedents.failed == {precedent: ["discretion.precedent.actor-standard-limit"]}
    assert f"precedent {precedent}: lets a ai_agent grant no more than its standard limit" in (
        above.causes
    )
    assert within.outcome is Outcome.ALLOW_EXCEPTION
    assert "discretion.precedent.applied" in within.rules


def test_the_precedent_bound_caps_by_default(tmp_path, sqlite_store):
    world = World(variant(tmp_path, ""), sqlite_store)
    precedent = world.precedent(bound="30.00")

    decision = world.guard.decide(proposal("70.00", cite=[precedent], key="a"))

    assert decision.outcome is Outcome.ROUTE
    assert "discretion.precedent.bounds" in decision.rules


def test_grantor_exception_limit_sets_the_precedent_bound_aside(tmp_path, sqlite_store):
    pack = variant(tmp_path, "          grants_up_to: grantor_exception_limit\n")
    world = World(pack, sqlite_store)
    precedent = world.precedent(bound="30.00")

    cited = world.guard.decide(proposal("70.00", cite=[precedent], key="a"))
    found = world.guard.decide(proposal("60.00", key="b"))

    # Above its 30.00 bound, within its grantor's (a manager's) exception limit.
    assert cited.outcome is Outcome.ALLOW_EXCEPTION
    assert cited.precedents is not None
    assert cited.precedents.applied == precedent
    # Found by scope too, though its bound is below the amount.
    assert found.outcome is Outcome.ALLOW_EXCEPTION
    assert found.precedents is not None
    assert found.precedents.applied == precedent


def test_a_ratio_bound_the_cap_would_set_aside_fails_at_load(tmp_path):
    with pytest.raises(PolicyError) as info:
        variant(tmp_path, "          grants_up_to: grantor_exception_limit\n", ratio=True)

    error = info.value
    lines = (tmp_path / "options.yaml").read_text(encoding="utf-8").splitlines()
    assert error.rule_id == "carrier-lost"
    assert error.line is not None
    assert lines[error.line - 1].strip() == "ratio_of: order.total"
    assert "grants_up_to grantor_exception_limit sets a precedent's own bounds aside" in str(error)


def test_an_unknown_cap_names_its_file_and_line(tmp_path):
    with pytest.raises(PolicyError) as info:
        variant(tmp_path, "          grants_up_to: everything\n")

    lines = (tmp_path / "options.yaml").read_text(encoding="utf-8").splitlines()
    assert info.value.line is not None
    assert lines[info.value.line - 1].strip() == "grants_up_to: everything"
    assert (
        "precedent.grants_up_to: 'everything' is not one of precedent_bound,"
        " actor_standard_limit, grantor_exception_limit"
    ) in str(info.value)


def test_a_precedent_bounds_the_whole_under_cumulative_authority(tmp_path, sqlite_store):
    # Authority measured per customer: a split must not take more under one precedent, piece
    # by piece, than its bound lets the whole take.
    source = SOURCE.replace(
        "  refund:\n    tools:",
        "  refund:\n    cumulative: {per: customer, window: 30d}\n    tools:",
    )
    path = tmp_path / "cumulative.yaml"
    path.write_text(source, encoding="utf-8")
    world = World(load_pack(path), sqlite_store)
    world.guard = Guard(
        load_pack(path),
        store=sqlite_store,
        clock=FakeClock(NOW),
        context=ShopFacts(facts()),
        ids=Counter(),
    )
    precedent = world.precedent(bound="100.00")

    first = world.guard.decide(proposal("60.00", cite=[precedent], key="a"))
    second = world.guard.decide(proposal("60.00", cite=[precedent], key="b"))

    assert first.outcome is Outcome.ALLOW_EXCEPTION
    assert second.outcome is Outcome.ROUTE
    assert second.precedents is not None
    assert second.precedents.failed == {precedent: ["discretion.precedent.bounds"]}


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # The reason names who may grant it.
        (
            "      - id: carrier-lost\n",
            "      - id: carrier-lost\n        granted_by: [tier1, tier2, manager]\n",
        ),
        # The AI's authority names the reasons it may grant.
        (
            '      refund: {standard: "50.00", exception: "20.00"}\n',
            '      refund: {standard: "50.00", exception: "20.00", reasons: [outage-goodwill]}\n',
        ),
    ],
    ids=["granted_by", "role-reasons"],
)
def test_a_precedent_never_lets_a_role_grant_a_reason_it_may_not_grant(
    tmp_path, sqlite_store, old, new
):
    assert SOURCE.count(old) == 1
    path = tmp_path / "not-the-ais.yaml"
    path.write_text(SOURCE.replace(old, new), encoding="utf-8")
    world = World(load_pack(path), sqlite_store)
    precedent = world.precedent()

    cited = world.guard.decide(proposal("70.00", cite=[precedent], key="a"))
    found = world.guard.decide(proposal("70.00", key="b"))
    within = world.guard.decide(proposal("15.00", key="c"))  # under its exception authority

    for decision, role in ((cited, "tier2"), (found, "tier2"), (within, "tier1")):
        assert decision.outcome is Outcome.ROUTE, decision.rules
        assert decision.required_role == role
        assert "discretion.precedent.applied" not in decision.rules
        # The agent is told no amount unlocks it, so it has nothing to gain by splitting.
        assert "discretion.exception-role" in decision.rules
        assert "only other roles may grant" in decision.explanation
    # A person the reason admits still follows the precedent as before.
    tier1 = Actor(id="tom", role="tier1", is_ai=False)
    followed = world.guard.decide(proposal("70.00", actor=tier1, cite=[precedent], key="d"))
    assert followed.outcome is Outcome.ALLOW_EXCEPTION
    assert "discretion.precedent.applied" in followed.rules


def test_bound_granted_amount_reuses_a_precedent_for_at_most_what_was_granted(
    tmp_path, sqlite_store
):
    world = World(variant(tmp_path, "          bound: granted_amount\n"), sqlite_store)
    # The manager granted 80.00: a bound of 100.00 would reuse it for more.
    with pytest.raises(ProposalError, match=r"above the USD 80.00 granted") as caught:
        world.precedent(bound="100.00")
    assert caught.value.field == "max_amount"
    granted = world.guard.store.find_decision("maria", "grant")
    assert granted is not None
    bounded = world.guard.precedents.set(
        granted.id,
        PrecedentSpec(
            scope={"shipment.carrier": "parcelco"},
            max_amount=Money.of("80.00", "USD"),
            expires_at=NOW + timedelta(days=30),
            citations=5,
            note="ParcelCo lost a trailer at the Rotterdam depot",
        ),
        grantor=MANAGER,
    )
    above = world.guard.decide(proposal("80.01", cite=[bounded.id], key="a"))
    assert above.outcome is Outcome.ROUTE
    assert "discretion.precedent.bounds" in above.rules
    within = world.guard.decide(proposal("80.00", cite=[bounded.id], key="b"))
    assert within.outcome is Outcome.ALLOW_EXCEPTION


def test_bound_granted_amount_with_grantor_exception_limit_fails_at_load(tmp_path):
    with pytest.raises(PolicyError, match="would never bound anything"):
        variant(
            tmp_path,
            "          bound: granted_amount\n          grants_up_to: grantor_exception_limit\n",
        )


def test_bound_granted_amount_is_the_amount_an_approver_granted(tmp_path, sqlite_store):
    world = World(variant(tmp_path, "          bound: granted_amount\n"), sqlite_store)
    routed = world.guard.decide(proposal("90.00", key="routed"))
    assert routed.outcome is Outcome.ROUTE

    def spec(bound: str) -> PrecedentSpec:
        return PrecedentSpec(
            scope={"shipment.carrier": "parcelco"},
            max_amount=Money.of(bound, "USD"),
            expires_at=NOW + timedelta(days=30),
            citations=5,
            note="ParcelCo lost a trailer",
        )

    lowered = Money.of("60.00", "USD")
    with pytest.raises(ProposalError, match=r"above the USD 60.00 granted"):
        world.guard.approvals.approve(
            routed.id, approver=MANAGER, note="ok", amount=lowered, precedent=spec("70.00")
        )
    approved = world.guard.approvals.approve(
        routed.id, approver=MANAGER, note="ok", amount=lowered, precedent=spec("60.00")
    )
    assert approved.amount == lowered
