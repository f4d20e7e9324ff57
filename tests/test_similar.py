"""Like cases: the same rules first, then the nearest amount and facts that matter."""

from __future__ import annotations

from approvals.helpers import MutableFacts
from conftest import good_facts, refund


def test_like_cases_rank_the_same_rules_first_and_show_only_facts_those_rules_read(make_guard):
    provider = MutableFacts(good_facts())
    guard = make_guard(context=provider)

    def decide(amount: str, key: str, **facts):
        provider.facts = good_facts(**facts)
        return guard.decide(refund(amount, key=key))

    same = decide("90.00", "same", **{"incident.active": True})
    allowed = decide("30.00", "allowed")
    fraud = decide("85.00", "fraud", **{"customer.fraud_flag": True})
    case = decide("80.00", "case")
    assert (same.outcome.value, allowed.outcome.value, fraud.outcome.value) == (
        "route",
        "allow",
        "deny",
    )
    assert case.outcome.value == "route"
    assert set(same.rules) == set(case.rules)

    found = {s.decision.id: s for s in guard.similar(case)}

    assert next(iter(found)) == same.id
    assert found[same.id].same_rules
    # incident.active differs, but no rule that fired in either case reads it.
    assert found[same.id].differs == ("amount",)
    assert not found[allowed.id].same_rules
    assert not found[fraud.id].same_rules
    assert "customer.fraud_flag" in found[fraud.id].differs
    assert all("incident.active" not in s.differs for s in found.values())
