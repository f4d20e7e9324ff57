"""Claims on every decision: a false claim on an in-policy call is caught too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import NOW, SHOP_PACK, Counter, FakeClock, good_facts, refund
from discretion import Guard, Outcome, PolicyError, load_pack
from discretion.context import StaticContextProvider
from discretion.policy import PolicyPack

FALSE_CLAIM = [{"field": "shipment.status", "value": "lost"}]
TRUE_CLAIM = [{"field": "shipment.status", "value": "delivered"}]
CONTRADICTS = "discretion.claim.contradicts-fact"


def claimed(amount: str = "40.00", claims: list[dict[str, Any]] = FALSE_CLAIM, **kw: Any):
    proposal = refund(amount, **kw)
    proposal["rationale"]["claims"] = claims
    return proposal


def with_claims(
    folder: Path, claims: str, action_claims: str | None = None, *, evidence: str | None = None
) -> PolicyPack:
    """The shop pack with a pack-level `claims` and, optionally, the refund action's own."""
    source = SHOP_PACK.read_text(encoding="utf-8").replace(
        "budgets:\n", f"claims: {claims}\nbudgets:\n", 1
    )
    if evidence is not None:
        lost = "        message: the carrier lost the parcel\n"
        source = source.replace(lost, f"{lost}        evidence: {evidence}\n", 1)
    if action_claims is not None:
        source = source.replace(
            "  refund:\n    tools:", f"  refund:\n    claims: {action_claims}\n    tools:", 1
        )
    path = folder / "claims.yaml"
    path.write_text(source, encoding="utf-8")
    return load_pack(path)


@pytest.fixture
def decide(sqlite_store):
    ids = Counter()

    def run(pack: PolicyPack, proposal: dict[str, Any], facts: dict[str, Any] | None = None):
        guard = Guard(
            pack,
            store=sqlite_store,
            context=StaticContextProvider(facts or good_facts()),
            clock=FakeClock(NOW),
            ids=ids,
        )
        return guard.decide(proposal)

    return run


def test_a_false_claim_on_an_in_policy_refund_routes_to_the_lowest_person_above(tmp_path, decide):
    pack = with_claims(tmp_path, "{check: every_decision}")

    decision = decide(pack, claimed())

    assert decision.outcome is Outcome.ROUTE
    # tier1 is the lowest human above the AI agent whose authority covers 40.00.
    assert decision.required_role == "tier1"
    assert decision.rules == [
        "refund-within-30-days",
        CONTRADICTS,
        f"{CONTRADICTS}:shipment.status",
    ]
    assert decision.causes == [
        "claim shipment.status='lost' contradicts the case facts for 'shipment.status'"
    ]
    assert "the claim shipment.status='lost' contradicts the case facts" in decision.explanation
    assert decision.judge is not None
    assert [(c.field, c.rule) for c in decision.judge.claims] == [("shipment.status", CONTRADICTS)]
    assert decision.reservations == []


def test_a_true_claim_keeps_the_allow_and_is_recorded(tmp_path, decide):
    pack = with_claims(tmp_path, "{check: every_decision, on_contradiction: deny}")

    decision = decide(pack, claimed(claims=TRUE_CLAIM))

    assert decision.outcome is Outcome.ALLOW
    assert decision.rules == ["refund-within-30-days"]
    assert decision.judge is not None
    assert [c.rule for c in decision.judge.claims] == ["discretion.claim.grounded"]


def test_on_contradiction_deny_denies_the_in_policy_refund(tmp_path, decide):
    pack = with_claims(tmp_path, "{check: every_decision, on_contradiction: deny}")

    decision = decide(pack, claimed())

    assert decision.outcome is Outcome.DENY
    assert decision.required_role is None
    assert decision.rules == [
        "refund-within-30-days",
        CONTRADICTS,
        f"{CONTRADICTS}:shipment.status",
        "discretion.claim.deny-on-contradiction",
    ]
    assert decision.explanation.startswith("Not permitted")


def test_nobody_ranks_above_the_actor_so_a_false_claim_is_denied(tmp_path, decide):
    pack = with_claims(tmp_path, "{check: every_decision}")

    decision = decide(pack, claimed(role="manager", actor="mia"))

    assert decision.outcome is Outcome.DENY
    assert decision.rules[-1] == "discretion.claim.nobody-above"
    assert f"{CONTRADICTS}:shipment.status" in decision.rules


def test_a_claim_the_facts_cannot_check_routes_even_when_contradictions_deny(tmp_path, decide):
    pack = with_claims(tmp_path, "{check: every_decision, on_contradiction: deny}")

    decision = decide(pack, claimed(claims=[{"field": "customer.tier", "value": "gold"}]))

    # The refund does not read customer.tier: the claim is unchecked, not shown false.
    assert decision.outcome is Outcome.ROUTE
    assert decision.required_role == "tier1"
    assert decision.rules[-2:] == [
        "discretion.claim.unknown-fact",
        "discretion.claim.unknown-fact:customer.tier",
    ]


def test_a_denied_proposal_stays_denied_and_names_the_false_claim(tmp_path, decide):
    pack = with_claims(tmp_path, "{check: every_decision}")

    decision = decide(pack, claimed(), good_facts(**{"customer.fraud_flag": True}))

    assert decision.outcome is Outcome.DENY
    assert decision.rules == ["fraud-flag", CONTRADICTS, f"{CONTRADICTS}:shipment.status"]


def test_an_allowed_exception_with_a_false_claim_is_denied_when_the_pack_says(tmp_path, decide):
    pack = with_claims(tmp_path, "{on_contradiction: deny}")
    lost = good_facts(**{"shipment.status": "lost", "order.delivered_at": None})

    false = decide(
        pack,
        claimed(
            "15.00", [{"field": "shipment.status", "value": "delivered"}], reason="carrier-lost"
        ),
        lost,
    )
    # `check` defaults to exceptions: an in-policy refund's claims are not checked.
    allowed = decide(pack, claimed(key="k-2"))

    assert false.outcome is Outcome.DENY
    assert false.rules == [
        "discretion.not-standard",
        "carrier-lost",
        CONTRADICTS,
        f"{CONTRADICTS}:shipment.status",
        "discretion.claim.deny-on-contradiction",
    ]
    assert false.reason is None
    assert allowed.outcome is Outcome.ALLOW
    assert allowed.judge is None


def test_an_action_overrides_only_the_keys_it_sets(tmp_path, decide):
    # The pack checks every decision and denies; the refund only routes, still on every one.
    pack = with_claims(
        tmp_path, "{check: every_decision, on_contradiction: deny}", "{on_contradiction: route}"
    )

    decision = decide(pack, claimed())

    assert pack.actions["refund"].claims is not None
    assert pack.actions["refund"].claims.every_decision
    assert pack.actions["credit"].claims.on_contradiction == "deny"  # type: ignore[union-attr]
    assert decision.outcome is Outcome.ROUTE


def test_without_the_option_an_in_policy_false_claim_is_allowed_as_before(pack, decide):
    decision = decide(pack, claimed())

    assert decision.outcome is Outcome.ALLOW
    assert decision.judge is None


def test_an_unknown_claims_setting_names_file_and_line(tmp_path):
    with pytest.raises(PolicyError) as info:
        with_claims(tmp_path, "{check: sometimes}")

    error = info.value
    source = (tmp_path / "claims.yaml").read_text(encoding="utf-8").splitlines()
    assert error.path == str(tmp_path / "claims.yaml")
    assert error.line is not None
    assert "check: sometimes" in source[error.line - 1]
    assert "claims.check: 'sometimes' is not one of exceptions, every_decision" in str(error)


def test_missing_evidence_alone_still_routes_when_contradictions_deny(tmp_path, decide):
    pack = with_claims(tmp_path, "{on_contradiction: deny}", evidence="{min_text: 200}")
    lost = good_facts(**{"shipment.status": "lost", "order.delivered_at": None})

    decision = decide(pack, claimed("15.00", [], reason="carrier-lost"), lost)
    manager = decide(
        pack, claimed("15.00", [], reason="carrier-lost", role="manager", actor="mia"), lost
    )

    assert (decision.outcome, decision.required_role) == (Outcome.ROUTE, "tier1")
    assert decision.rules[-1] == "discretion.judge.text-too-short"
    # Nobody ranks above a manager; no claim failed, so it routes as it always has.
    assert (manager.outcome, manager.required_role) == (Outcome.ROUTE, "manager")
