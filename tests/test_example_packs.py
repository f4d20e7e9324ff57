"""The travel and marketplace example packs pass their own eval suites, and use every pack feature.

Each pack encodes a written policy (`examples/<name>/POLICY.md`); its suite
(`evals/<name>/<name>.yaml`) holds the policy's edge cases. A change to the engine that makes
any of them decide otherwise fails here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from discretion import Guard, Outcome, SqlStore, load_pack
from discretion.context import (
    ChainedContext,
    ContextRequest,
    JsonContextProvider,
    StaticContextProvider,
)
from discretion.errors import ContextError
from discretion.evals import evaluate, load_suite

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
EXAMPLES = ("travel", "marketplace")
ASSISTANT = {"id": "kestrel-assist", "role": "ai_agent", "is_ai": True}

# The edge-case categories every example suite must keep (by the tags its cases carry).
CATEGORIES = {
    "at-limit",
    "one-cent-over",
    "hard-limit",
    "grounds",
    "missing-record",
    "optional-record",
    "asserted",
    "claims",
    "contradiction",
    "precedent",
    "cited-only",
    "split",
    "ledger-total",
    "budget",
    "ids",
    "entities",
    "prompt-injection",
    "malformed",
    "decimal",
    "signed-money",
    "records",
    "arguments",
    "currency",
}

# How each example states its amounts in several currencies: once per currency, or once in a
# base currency converted at a rate fact.
CURRENCY_FEATURE = {"marketplace": "per_currency", "travel": "rates"}


def spec_of(name: str) -> dict[str, Any]:
    """The pack's YAML files merged by their top-level keys, as `load_pack` merges them."""
    merged: dict[str, Any] = {}
    for path in sorted((ROOT / "examples" / name / "pack").glob("*.yaml")):
        for key, value in yaml.safe_load(path.read_text(encoding="utf-8")).items():
            if isinstance(value, dict):
                merged.setdefault(key, {}).update(value)
            elif isinstance(value, list):
                merged.setdefault(key, []).extend(value)
            else:
                merged[key] = value
    return merged


@pytest.fixture(scope="module")
def report():
    suites = [ROOT / "evals" / name / f"{name}.yaml" for name in EXAMPLES]
    return evaluate(suites).to_json()


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_suite_passes_with_at_least_60_cases_and_full_coverage(report, name):
    suite = load_suite(ROOT / "evals" / name / f"{name}.yaml")
    pack = load_pack(ROOT / "examples" / name / "pack")
    (figures,) = [s for s in report["suites"] if s["suite"] == suite.suite]
    cases = [c for c in report["cases"] if c["suite"] == suite.suite]
    assert len(cases) >= 60
    failing = [(c["id"], c.get("failures")) for c in cases if not c["passed"]]
    assert failing == []
    assert figures["missed_thresholds"] == []
    coverage = next(c for c in report["coverage"] if c["pack"] == pack.name)
    assert coverage["uncovered"] == []
    assert coverage["covered"] == len(pack.rule_ids())
    assert report["summary"]["leakage"] == {}
    tags = {tag for case in suite.cases for tag in case.tags}
    assert CATEGORIES - tags == set()


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_suite_tests_every_currency_at_its_limit_and_one_minor_unit_over(report, name):
    suite = load_suite(ROOT / "evals" / name / f"{name}.yaml")
    pack = load_pack(ROOT / "examples" / name / "pack")
    passed = {c["id"] for c in report["cases"] if c["suite"] == suite.suite and c["passed"]}

    def currency_of(case: Any) -> str:
        arguments = case.proposal["tool"]["arguments"]
        return str(arguments.get("currency", pack.currency))

    for edge in ("at-limit", "one-cent-over"):
        tested = {currency_of(c) for c in suite.cases if edge in c.tags and c.id in passed}
        assert tested >= set(pack.accepts), edge
    currency_cases = [c for c in suite.cases if "currency" in c.tags]
    assert len(currency_cases) >= 12
    expected = [c.expect for c in currency_cases]
    # A currency the pack does not serve, and an amount finer than its currency, are refused.
    assert {e.field for e in expected if e.outcome == "error"} >= {"currency", "amount"}
    # A money fact in another currency, and a split across currencies on one record, route.
    routed = {rule for e in expected if e.outcome == "route" for rule in e.rules}
    assert {"discretion.context-unavailable", "discretion.currency-mismatch"} <= routed
    if CURRENCY_FEATURE[name] == "rates":
        assert "discretion.currency-rate" in routed


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_pack_uses_every_pack_feature(name):
    spec = spec_of(name)
    records = set(spec["records"])
    actions = list(spec["actions"].values())
    args = [
        a if isinstance(a, dict) else {"type": a}
        for x in actions
        for a in x.get("args", {}).values()
    ]
    fields = [f if isinstance(f, dict) else {"type": f} for f in spec["context"].values()]
    # Typed arguments, among them a list or a record.
    assert any(a["type"] == "string" for a in args)
    assert any(a["type"].startswith("list[") or a["type"] in records for a in args)
    # Structured facts: a list of records, an optional record, a decimal, signed money.
    assert any(f["type"].startswith("list[") and f["type"][5:-1] in records for f in fields)
    assert any(f.get("optional") and f["type"] in records for f in fields)
    assert any(f["type"] == "decimal" for f in fields)
    assert any(item.get("signed") for item in [*args, *fields])
    # Claims on every decision, one action routing and another denying a false one.
    assert spec["claims"]["check"] == "every_decision"
    overrides = {x["claims"]["on_contradiction"] for x in actions if "claims" in x}
    assert {spec["claims"]["on_contradiction"]} | overrides == {"route", "deny"}
    # Asserted facts with allowed values and what they unlock.
    assert any("unlocks" in a and "values" in a for a in spec["asserted"].values())
    # Precedent options per reason.
    reasons = [r for x in actions for r in x.get("exceptions", [])]
    precedents = [r["precedent"] for r in reasons if "precedent" in r]
    assert any(p.get("cited_only") for p in precedents)
    assert any(p.get("grants_up_to", "precedent_bound") != "precedent_bound" for p in precedents)
    # The older features.
    assert any(x.get("cumulative") for x in actions)
    assert {t["per"] for t in spec["totals"].values()} >= {"customer", "order"}
    assert spec["budgets"]
    assert spec["entities"]["order"]["belongs_to"] == ["customer"]
    assert spec["unknown_tools"] == "route"
    pack = load_pack(ROOT / "examples" / name / "pack")
    assert spec["ungoverned_tools"]
    assert not any(pack.governs(tool) for tool in spec["ungoverned_tools"])
    # Several currencies, every tool naming its call's, and amounts rules read by name.
    assert "currency" not in spec
    assert len(spec["currencies"]) >= 2
    assert all(t.get("currency") for x in actions for t in x["tools"])
    assert spec["amounts"]
    authority = [a for role in spec["roles"] for a in role["authority"].values()]
    if CURRENCY_FEATURE[name] == "per_currency":
        # Limits stated per currency: a map covering each one the pack declares.
        assert "rates" not in spec
        assert all(set(a["standard"]) == set(spec["currencies"]) for a in authority)
        assert all(set(v) == set(spec["currencies"]) for v in spec["amounts"].values())
    else:
        # Limits stated once, in the base, converted at a declared rate fact.
        assert spec["rates"]["base"] in spec["currencies"]
        assert spec["context"][spec["rates"]["fact"]]["type"] == "decimal"
        assert all(isinstance(a["standard"], str) for a in authority)


class FailingOperations:
    """The operations system is down: every fetch fails."""

    def fetch(self, request: ContextRequest, /) -> dict[str, Any]:
        raise ContextError("the operations system timed out")


def compensation(booking: str, customer: str) -> dict[str, Any]:
    arguments = {
        "booking_ref": booking,
        "customer_id": customer,
        "case_id": f"K-{booking[3:]}",
        "amount": "250.00",
        "form": "cash",
        "segment": f"{booking}-1",
        "passengers": 1,
    }
    return {"actor": ASSISTANT, "tool": {"name": "pay_compensation", "arguments": arguments}}


def travel_guard(context: Any) -> Guard:
    pack = load_pack(ROOT / "examples" / "travel" / "pack")
    return Guard(pack, store=SqlStore("sqlite://"), context=context, clock=lambda: NOW)


def test_no_disruption_on_record_is_declined_but_a_failing_provider_routes():
    facts = JsonContextProvider(ROOT / "examples" / "travel" / "cases.json")
    absent = travel_guard(facts).decide(compensation("KB-2012", "C-103"))
    assert (absent.outcome, absent.rules) == (Outcome.DENY, ["comp.no-disruption-on-record"])
    failed = travel_guard(FailingOperations()).decide(compensation("KB-2012", "C-103"))
    assert failed.outcome is Outcome.ROUTE
    assert failed.rules == ["discretion.context-unavailable"]
    assert failed.required_role == "consultant"


def test_a_declined_reason_names_the_ground_and_the_fact_that_failed_it():
    short = StaticContextProvider({"customer.member_years": "2.4"})
    facts = JsonContextProvider(ROOT / "examples" / "travel" / "cases.json")
    guard = travel_guard(ChainedContext([short, facts]))
    arguments = {
        "booking_ref": "KB-2003",
        "customer_id": "C-102",
        "case_id": "K-2003",
        "fee": "30.00",
        "segments": ["KB-2003-2"],
    }
    decision = guard.decide(
        {
            "actor": ASSISTANT,
            "tool": {"name": "waive_change_fee", "arguments": arguments},
            "rationale": {"reason": "change.gold-courtesy", "text": "Gold member."},
        }
    )
    assert decision.outcome is Outcome.DENY
    assert (
        "reason 'change.gold-courtesy' does not apply: customer.member_years >= 25 does not hold"
        " (customer.member_years is 2.4, read by the rules as 24)"
    ) in decision.explanation
    assert "booking.disruption has no value" in decision.explanation
