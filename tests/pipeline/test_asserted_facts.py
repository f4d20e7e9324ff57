"""Facts the agent asserts from the conversation: validated, recorded apart, capped."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conftest import NOW, Counter, FakeClock
from discretion import Guard, Money, Outcome, PolicyError, ProposalError, Verdict, load_pack
from discretion.context import StaticContextProvider
from discretion.judge import StaticJudge
from discretion.precedent import PrecedentSpec
from discretion.proposal import Actor
from discretion.store._schema import ledger

PACK = Path(__file__).resolve().parent.parent / "packs" / "asserted.yaml"
REASON = "asserted.customer.stated_reason"
UNLOCK = "discretion.asserted.unlock-exceeded"
FACTS = {
    "order.total": {"amount": "120.00", "currency": "USD"},
    "order.delivered_at": (NOW - timedelta(days=45)).isoformat(),
    "shipment.status": "delivered",
}


def refund(amount: str, asserted: dict[str, Any] | None = None, **rationale: Any):
    return {
        "actor": {"id": "bot-1", "role": "ai_agent"},
        "tool": {
            "name": "issue_refund",
            "arguments": {"amount": amount, "customer_id": "c-1", "order_id": "o-1"},
        },
        "rationale": {"reason": "damaged-on-arrival", "asserted": asserted or {}, **rationale},
    }


@pytest.fixture
def guard(sqlite_store) -> Guard:
    return Guard(
        load_pack(PACK),
        store=sqlite_store,
        context=StaticContextProvider(FACTS),
        clock=FakeClock(NOW),
        ids=Counter(),
    )


def body(store, decision_id: str) -> dict[str, Any]:
    with store.engine.connect() as connection:
        return json.loads(
            connection.execute(
                select(ledger.c.body).where(ledger.c.subject_id == decision_id)
            ).scalar_one()
        )


def test_an_exception_resting_on_an_assertion_is_allowed_and_recorded_as_one(guard, sqlite_store):
    decision = guard.decide(refund("25.00", {"customer.stated_reason": "damaged"}))

    assert decision.outcome is Outcome.ALLOW_EXCEPTION
    assert decision.rules == ["discretion.not-standard", "damaged-on-arrival"]
    recorded = body(sqlite_store, decision.id)
    # Apart from the grounded facts: under `asserted.` in the context, and in the proposal.
    assert recorded["context"][REASON] == "damaged"
    assert recorded["context"]["asserted.customer.confirmed_address"] is None
    assert recorded["context"]["shipment.status"] == "delivered"
    assert recorded["proposal"]["rationale"]["asserted"] == {"customer.stated_reason": "damaged"}


def test_above_what_the_assertion_unlocks_a_person_decides(guard):
    # Within the agent's 80.00 exception authority, above the 30.00 the assertion unlocks.
    decision = guard.decide(refund("50.00", {"customer.stated_reason": "damaged"}))

    assert decision.outcome is Outcome.ROUTE
    assert decision.required_role == "tier1"
    assert decision.rules == [
        "discretion.not-standard",
        "damaged-on-arrival",
        UNLOCK,
        f"{UNLOCK}:{REASON}",
    ]
    assert REASON in decision.causes[0]


def guard_with(folder: Path, store, old: str, new: str) -> Guard:
    """A guard on the pack with one exact piece of its text replaced."""
    folder.mkdir()
    source = PACK.read_text(encoding="utf-8")
    assert source.count(old) == 1
    (folder / "pack.yaml").write_text(source.replace(old, new), encoding="utf-8")
    context = StaticContextProvider(FACTS)
    return Guard(load_pack(folder), store=store, context=context, clock=FakeClock(NOW))


@pytest.mark.parametrize(
    "written",
    [
        "// the customer's own account of the parcel\n",
        "'''it's''' != '' && // don't trust it\n",
        "r'\\\\' != '' &&\n",
    ],
)
def test_an_assertion_read_after_a_comment_or_literal_is_still_capped(
    tmp_path, sqlite_store, written
):
    """An apostrophe in a comment, or a quote in a raw or triple-quoted string, read as the
    start of a string hid the assertion after it, so what it unlocks was never capped."""
    rule = "asserted.customer.stated_reason == 'damaged'\n"
    old = f"        when: >-\n          {rule}"
    new = f"        when: |-\n          {written}          {rule}"
    guard = guard_with(tmp_path / "pack", sqlite_store, old, new)

    decision = guard.decide(refund("50.00", {"customer.stated_reason": "damaged"}))

    assert (decision.outcome, decision.required_role) == (Outcome.ROUTE, "tier1")
    assert UNLOCK in decision.rules


def test_an_assertion_read_in_max_amount_after_a_commented_when_is_capped(tmp_path, sqlite_store):
    """`when` and `max_amount` were read as one text: a `when` ending in a comment hid the
    assertion `max_amount` reads, and the cap on what it unlocks was never applied."""
    old = (
        "        when: \"shipment.status == 'delivered' && now - order.delivered_at <="
        " duration('720h')\"\n        max_amount: order.total\n"
    )
    new = (
        "        when: \"shipment.status == 'delivered' // a delivered order\"\n"
        "        max_amount: \"asserted.customer.stated_reason == 'damaged' ? order.total : 0\"\n"
    )
    guard = guard_with(tmp_path / "pack", sqlite_store, old, new)

    decision = guard.decide(refund("90.00", {"customer.stated_reason": "damaged"}, reason=None))

    assert (decision.outcome, decision.required_role) == (Outcome.ROUTE, "tier1")
    assert UNLOCK in decision.rules


def test_a_rule_resting_on_no_assertion_is_not_capped(sqlite_store):
    recent = FACTS | {"order.delivered_at": (NOW - timedelta(days=5)).isoformat()}
    guard = Guard(
        load_pack(PACK),
        store=sqlite_store,
        context=StaticContextProvider(recent),
        clock=FakeClock(NOW),
    )

    decision = guard.decide(refund("90.00", {"customer.stated_reason": "late"}, reason=None))

    assert decision.outcome is Outcome.ALLOW
    assert decision.rules == ["within-30-days"]


def test_a_missing_assertion_never_allows_the_exception_that_needs_it(guard):
    decision = guard.decide(refund("25.00"))

    assert decision.outcome is not Outcome.ALLOW_EXCEPTION
    assert decision.outcome is Outcome.ROUTE


def test_another_value_does_not_unlock_the_reason(guard):
    decision = guard.decide(refund("25.00", {"customer.stated_reason": "late"}))

    assert decision.outcome is Outcome.DENY
    assert (
        "reason 'damaged-on-arrival' does not apply: asserted.customer.stated_reason =="
        " 'damaged' does not hold (asserted.customer.stated_reason is 'late')"
        in decision.explanation
    )


@pytest.mark.parametrize(
    ("asserted", "message"),
    [
        (
            {"customer.mood": "angry"},
            "rationale.asserted.customer.mood: pack 'test-asserted' declares no asserted fact"
            " 'customer.mood'; declared: customer.confirmed_address, customer.contacts,"
            " customer.stated_reason",
        ),
        (
            {"customer.stated_reason": 3},
            "rationale.asserted.customer.stated_reason: 3 is a int; the pack declares a string",
        ),
        (
            {"customer.confirmed_address": "yes"},
            "rationale.asserted.customer.confirmed_address: 'yes' is a string; the pack declares"
            " a bool",
        ),
        (
            {"customer.stated_reason": "bored"},
            "rationale.asserted.customer.stated_reason: 'bored' is not allowed; one of"
            " 'changed_mind', 'damaged', 'late'",
        ),
        (
            {"customer.contacts": 2},
            "rationale.asserted.customer.contacts: action 'refund' does not read"
            " 'asserted.customer.contacts'; assert only what its rules read",
        ),
    ],
)
def test_an_assertion_the_pack_does_not_allow_is_refused(guard, sqlite_store, asserted, message):
    with pytest.raises(ProposalError) as info:
        guard.decide(refund("25.00", asserted))

    assert str(info.value) == message
    assert info.value.field == "rationale.asserted." + next(iter(asserted))
    with sqlite_store.engine.connect() as connection:
        assert connection.execute(select(ledger.c.seq)).first() is None


def test_a_claim_cannot_be_grounded_on_an_assertion(guard):
    decision = guard.decide(
        refund(
            "25.00",
            {"customer.stated_reason": "damaged"},
            claims=[{"field": REASON, "value": "damaged"}],
        )
    )

    assert decision.outcome is Outcome.ROUTE
    assert decision.judge is not None
    assert decision.judge.claims[0].rule == "discretion.claim.unknown-fact"


def test_a_precedent_cannot_be_scoped_on_an_assertion(guard):
    tina = {"id": "tina", "role": "tier1", "is_ai": False}
    granted = guard.decide(refund("25.00", {"customer.stated_reason": "damaged"}) | {"actor": tina})
    spec = PrecedentSpec(
        scope={REASON: "damaged"},
        max_amount=Money.of("25.00", "USD"),
        expires_at=NOW + timedelta(days=10),
        citations=2,
        note="damaged goods from the March batch",
    )

    with pytest.raises(ProposalError) as info:
        guard.precedents.set(granted.id, spec, grantor=Actor(**tina))

    assert granted.outcome is Outcome.ALLOW_EXCEPTION
    assert info.value.field == f"scope.{REASON}"
    assert "is the agent's own assertion" in str(info.value)


def test_the_llm_judge_reads_assertions_as_claims_never_as_facts(tmp_path, sqlite_store):
    judged = tmp_path / "judged.yaml"
    judged.write_text(
        PACK.read_text(encoding="utf-8").replace(
            "        precedent: {max_expiry: 30d}\n", "        judge: true\n"
        ),
        encoding="utf-8",
    )
    judge = StaticJudge(
        Verdict(justified=True, clause="damaged-on-arrival", unsupported_claims=[], reason="ok")
    )
    guard = Guard(
        load_pack(judged),
        store=sqlite_store,
        context=StaticContextProvider(FACTS),
        clock=FakeClock(NOW),
        judge=judge,
    )

    decision = guard.decide(refund("25.00", {"customer.stated_reason": "damaged"}))

    assert decision.outcome is Outcome.ALLOW_EXCEPTION
    (request,) = judge.requests
    assert not any(name.startswith("asserted.") for name in request.facts)
    assert [(c.field, c.value) for c in request.claims] == [(REASON, "damaged")]
    assert '"asserted.customer.stated_reason"' not in request.prompt.user.split("<claims>")[0]


def load_error(folder: Path, old: str, new: str) -> tuple[PolicyError, list[str]]:
    source = PACK.read_text(encoding="utf-8")
    assert source.count(old) == 1, old
    path = folder / "asserted.yaml"
    path.write_text(source.replace(old, new), encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_pack(path)
    assert info.value.path == str(path)
    assert info.value.line is not None
    return info.value, path.read_text(encoding="utf-8").splitlines()


def test_an_assertion_compared_with_the_wrong_type_fails_at_load(tmp_path):
    error, lines = load_error(
        tmp_path,
        "asserted.customer.stated_reason == 'damaged'",
        "asserted.customer.stated_reason == 3",
    )

    assert error.rule_id == "damaged-on-arrival"
    # The line of the rule's `when`, a folded block here.
    assert lines[error.line - 1].strip() == "when: >-"  # type: ignore[operator]
    assert "does not compile" in str(error)


def test_values_of_another_type_than_declared_fail_at_load(tmp_path):
    error, lines = load_error(
        tmp_path, "values: [damaged, late, changed_mind]", "values: [damaged, 7]"
    )

    assert "values: [damaged, 7]" in lines[error.line - 1]  # type: ignore[operator]
    assert "asserted 'customer.stated_reason' is a string, but values lists 7" in str(error)


def test_a_context_field_cannot_pose_as_an_assertion(tmp_path):
    error, lines = load_error(
        tmp_path, "  shipment.status: string\n", "  shipment.status: string\n  asserted.x.y: bool\n"
    )

    assert lines[error.line - 1].strip() == "asserted.x.y: bool"  # type: ignore[operator]
    assert "declare it under asserted as 'x.y'" in str(error)


def test_an_assertion_cannot_be_evidence(tmp_path):
    error, lines = load_error(
        tmp_path,
        "duration('1440h')\n        max_amount: order.total\n",
        "duration('1440h')\n        max_amount: order.total\n"
        "        evidence: {claims: [asserted.customer.stated_reason]}\n",
    )

    assert error.rule_id == "damaged-on-arrival"
    assert "asserted.customer.stated_reason" in lines[error.line - 1]  # type: ignore[operator]
    assert "is the agent's own assertion, so it cannot be an evidence claim" in str(error)


COUNTED = (
    PACK.read_text(encoding="utf-8")
    .replace(
        'unlocks: {max_amount: "30.00"}',
        'unlocks: {max_amount: "30.00", counting: order.refunded_on_word}',
    )
    .replace(
        "roles:\n",
        "entities:\n  customer: {}\n  order: {belongs_to: [customer]}\n"
        "totals:\n  order.refunded_on_word:\n"
        "    {actions: [refund], per: order, window: 30d, outcomes: [allow_exception]}\n"
        "roles:\n",
        1,
    )
    .replace(
        "      - asserted.customer.confirmed_address\n",
        "      - asserted.customer.confirmed_address\n      - order.refunded_on_word\n",
    )
)


def counted_guard(store, tmp_path: Path, pack: str = COUNTED) -> Guard:
    (tmp_path / "pack.yaml").write_text(pack, encoding="utf-8")
    context = StaticContextProvider(
        defaults=FACTS,
        customers={"c-1": {}},
        orders={"o-1": {"order.customer_id": "c-1"}, "o-2": {"order.customer_id": "c-1"}},
    )
    return Guard(
        load_pack(tmp_path / "pack.yaml"),
        store=store,
        context=context,
        clock=FakeClock(NOW),
        ids=Counter(),
    )


def test_a_cap_counting_a_total_holds_calls_split_on_one_record(sqlite_store, tmp_path):
    """20.00 and 20.00 on the customer's word: 40.00 on one order, above the 30.00 it unlocks."""
    guard = counted_guard(sqlite_store, tmp_path)
    first = guard.decide(refund("20.00", {"customer.stated_reason": "damaged"}))
    second = guard.decide(refund("20.00", {"customer.stated_reason": "damaged"}, text="again"))
    assert first.outcome is Outcome.ALLOW_EXCEPTION
    assert (second.outcome, second.required_role) == (Outcome.ROUTE, "tier1")
    assert f"{UNLOCK}:{REASON}" in second.rules
    # Another order starts from nothing.
    other = refund("20.00", {"customer.stated_reason": "damaged"})
    other["tool"]["arguments"]["order_id"] = "o-2"
    assert guard.decide(other).outcome is Outcome.ALLOW_EXCEPTION


def test_a_counted_total_that_cannot_be_read_routes(sqlite_store, tmp_path):
    """The proposal names no order: what the order received is unknown, so a person decides."""
    guard = counted_guard(sqlite_store, tmp_path)
    unnamed = refund("10.00", {"customer.stated_reason": "damaged"})
    del unnamed["tool"]["arguments"]["order_id"]
    decision = guard.decide(unnamed)
    assert decision.outcome is Outcome.ROUTE


def test_a_cap_counting_what_is_not_a_money_total_or_unread_fails_at_load(tmp_path):
    missing = COUNTED.replace("counting: order.refunded_on_word", "counting: order.total")
    (tmp_path / "a.yaml").write_text(missing, encoding="utf-8")
    with pytest.raises(PolicyError, match=r"unlocks counting 'order\.total', which is not a money"):
        load_pack(tmp_path / "a.yaml")
    unread = COUNTED.replace(
        "      - asserted.customer.confirmed_address\n      - order.refunded_on_word\n",
        "      - asserted.customer.confirmed_address\n",
    )
    (tmp_path / "b.yaml").write_text(unread, encoding="utf-8")
    with pytest.raises(PolicyError, match=r"add 'order\.refunded_on_word' to the reads of action"):
        load_pack(tmp_path / "b.yaml")


@pytest.mark.parametrize(
    ("total", "says"),
    [
        (
            "{actions: [credit], per: order, window: 30d, outcomes: [allow_exception]}",
            "the total counts no 'refund' calls",
        ),
        (
            "{actions: [refund], per: order, window: 30d, outcomes: [allow]}",
            "the total counts no allow_exception decisions",
        ),
        (
            "{actions: [refund], per: order, window: 30d, reasons: [other-reason]}",
            "the total counts only exceptions for other-reason",
        ),
    ],
)
def test_a_counted_total_must_count_what_the_resting_rule_lets_through(tmp_path, total, says):
    """A total leaving out the action, outcome or reason resting on the assertion is refused.

    Calls it does not count would each pass under the cap: six of another action's vouchers on
    the customer's word against a cap of one.
    """
    text = COUNTED.replace(
        "{actions: [refund], per: order, window: 30d, outcomes: [allow_exception]}", total
    )
    if "credit" in total:
        text = text.replace(
            "actions:\n  refund:",
            "actions:\n  credit:\n    tools: [{name: give_credit, amount: amount}]\n  refund:",
        )
    if "other-reason" in total:
        text = text.replace(
            "        precedent: {max_expiry: 30d}",
            "        precedent: {max_expiry: 30d}\n      - {id: other-reason, when: 'false'}",
        )
    (tmp_path / "pack.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match=re.escape(says)):
        load_pack(tmp_path / "pack.yaml")


def test_a_counted_cap_on_a_cumulative_action_counts_what_came_before_once(sqlite_store, tmp_path):
    """20.00 then 5.00 on one order: 25.00 on the customer's word, under the 30.00 cap."""
    cumulative = COUNTED.replace(
        "  refund:\n    tools:", "  refund:\n    cumulative: {per: order, window: 30d}\n    tools:"
    )
    assert "cumulative:" in cumulative
    guard = counted_guard(sqlite_store, tmp_path, cumulative)
    first = guard.decide(refund("20.00", {"customer.stated_reason": "damaged"}))
    second = guard.decide(refund("5.00", {"customer.stated_reason": "damaged"}, text="more"))
    third = guard.decide(refund("10.00", {"customer.stated_reason": "damaged"}, text="again"))
    assert first.outcome is Outcome.ALLOW_EXCEPTION
    assert second.outcome is Outcome.ALLOW_EXCEPTION, second.rules
    assert (third.outcome, f"{UNLOCK}:{REASON}" in third.rules) == (Outcome.ROUTE, True)
