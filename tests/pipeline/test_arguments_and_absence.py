"""Rules that read tool arguments, decide on absent records, and count in decimals and signed money.

The travel test pack (`tests/packs/travel.yaml`) declares typed `args`, optional facts tested
with `has()`, a decimal tenure and a signed fare difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from conftest import NOW, Counter, FakeClock
from discretion import Actor, Guard, Outcome, PolicyError, ProposalError, load_pack
from discretion.approvals import ApprovalStatus
from discretion.context import ContextRequest, StaticContextProvider, TimeoutContext
from discretion.evals import replay

HERE = Path(__file__).resolve().parent.parent
PACK = HERE / "packs" / "travel.yaml"
BOT = Actor(id="bot-1", role="ai_agent")
TINA = Actor(id="tina", role="tier1", is_ai=False)


def facts(**overrides: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "booking.id": "b-1",
        "booking.status": "confirmed",
        "booking.fare_difference": {"amount": "-12.50", "currency": "USD"},
        "customer.tenure_years": "0.5",
    }
    found.update(overrides)
    return {name: value for name, value in found.items() if value is not None}


def waive(
    fee: Any = "40.00",
    *,
    key: str = "k-1",
    actor: Actor = BOT,
    cite: str | None = None,
    **arguments: Any,
) -> dict[str, Any]:
    args: dict[str, Any] = {
        "fee": fee,
        "customer_id": "c-1",
        "booking_ref": "b-1",
        "booking": {"cabin": "economy", "nights": 3},
    }
    args.update(arguments)
    return {
        "actor": actor.model_dump(),
        "tool": {"name": "waive_change_fee", "arguments": args},
        "rationale": {"reason": cite, "text": "customer asked"},
        "idempotency_key": key,
    }


@pytest.fixture(scope="module")
def pack():
    return load_pack(PACK)


def guard_with(store, pack, found: Mapping[str, Any] | None = None, **kwargs: Any) -> Guard:
    context = kwargs.pop("context", None) or StaticContextProvider(
        facts() if found is None else found
    )
    kwargs.setdefault("ids", Counter())
    return Guard(pack, store=store, context=context, clock=FakeClock(NOW), **kwargs)


# Arguments in CEL ----------------------------------------------------------------------------


def test_a_rule_reads_a_tool_argument_at_the_path_its_tool_carries_it(store, pack):
    guard = guard_with(store, pack)
    economy = guard.decide(waive(key="a"))
    first = guard.decide(waive(key="b", booking={"cabin": "first", "nights": 3}))
    assert (economy.outcome, economy.rules) == (Outcome.ALLOW, ["cheaper-fare"])
    assert (first.outcome, first.rules) == (Outcome.DENY, ["never-first-class"])


def test_an_int_argument_decides_a_standard_rule(store, pack):
    guard = guard_with(store, pack)
    long_stay = guard.decide(waive(key="a", booking={"cabin": "economy", "nights": 15}))
    assert (long_stay.outcome, long_stay.rules) == (
        Outcome.DENY,
        [
            "discretion.not-standard",
            "discretion.reason-not-cited",
            "discretion.no-permitted-reason",
        ],
    )


def test_a_list_argument_is_read_with_exists(store, pack):
    guard = guard_with(store, pack)
    card = guard.decide(waive(key="a", paid_with=["card"]))
    gift = guard.decide(waive(key="b", paid_with=["card", "gift_card"]))
    assert card.outcome is Outcome.ALLOW
    assert (gift.outcome, gift.rules) == (Outcome.DENY, ["no-gift-cards"])


def test_an_optional_argument_left_out_is_absent_and_present_it_grants_its_reason(store, pack):
    dearer = facts(**{"booking.fare_difference": {"amount": "30.00", "currency": "USD"}})
    guard = guard_with(store, pack, dearer)
    without = guard.decide(waive(key="a", cite="schedule-change"))
    stated = guard.decide(waive(key="b", cite="schedule-change", reason="airline_schedule_change"))
    assert (without.outcome, without.rules) == (
        Outcome.DENY,
        [
            "discretion.not-standard",
            "discretion.reason-not-applicable",
            "schedule-change",
            "discretion.no-permitted-reason",
        ],
    )
    assert (stated.outcome, stated.rules) == (
        Outcome.ALLOW_EXCEPTION,
        ["discretion.not-standard", "schedule-change"],
    )


def test_timestamp_decimal_and_signed_money_arguments_are_exact(store, pack):
    guard = guard_with(
        store, pack, facts(**{"booking.fare_difference": {"amount": "30.00", "currency": "USD"}})
    )
    soon = guard.decide(
        waive(key="a", cite="early-departure", departs_at="2026-11-27T09:00:00+00:00")
    )
    later = guard.decide(
        waive(key="b", cite="early-departure", departs_at="2026-11-30T09:00:00+00:00")
    )
    member = guard.decide(waive(key="c", cite="miles-member", miles="100.0"))
    short = guard.decide(waive(key="d", cite="miles-member", miles="99.9"))
    owed = guard.decide(waive(key="e", cite="credit-owed", credit_back="-0.01"))
    square = guard.decide(waive(key="f", cite="credit-owed", credit_back="0.00"))
    assert (soon.outcome, later.outcome) == (Outcome.ALLOW_EXCEPTION, Outcome.DENY)
    # 100.0 miles with one place is 1000 in CEL; 99.9 is 999.
    assert (member.outcome, short.outcome) == (Outcome.ALLOW_EXCEPTION, Outcome.DENY)
    assert (owed.outcome, square.outcome) == (Outcome.ALLOW_EXCEPTION, Outcome.DENY)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"booking": {"cabin": ["economy"], "nights": 3}},
            "tool 'waive_change_fee' argument 'booking.cabin': a list where a string belongs",
        ),
        (
            {"booking": {"cabin": "economy", "nights": "3"}},
            "tool 'waive_change_fee' argument 'booking.nights': a str where a whole number belongs",
        ),
        (
            {"booking": {"cabin": "economy", "nights": True}},
            "tool 'waive_change_fee' argument 'booking.nights': a bool where a whole number"
            " belongs",
        ),
        (
            {"booking": {"cabin": "economy", "nights": 2**63}},
            "tool 'waive_change_fee' argument 'booking.nights': 9223372036854775808 is beyond a"
            " 64-bit whole number",
        ),
        (
            {"booking": {"cabin": "economy"}},
            "tool 'waive_change_fee' argument 'booking.nights' is missing; the pack's action"
            " declares it (args.nights) and not as optional, so the call must carry it",
        ),
        (
            {"miles": "1.25"},
            "tool 'waive_change_fee' argument 'miles': tool.arguments.miles: '1.25' has more than"
            " 1 decimal places",
        ),
        (
            {"departs_at": "2026-11-27T09:00:00"},
            "tool 'waive_change_fee' argument 'departs_at': a str where an ISO 8601 timestamp"
            " with a UTC offset belongs",
        ),
        (
            {"paid_with": "card"},
            "tool 'waive_change_fee' argument 'paid_with': a str where a list of strings belongs",
        ),
        (
            {"credit_back": "-0.001"},
            "tool 'waive_change_fee' argument 'credit_back': amount: 0.001 has more decimal"
            " places than USD allows (2)",
        ),
    ],
)
def test_an_argument_that_does_not_fit_its_declared_type_is_refused(
    sqlite_store, pack, arguments, message
):
    guard = guard_with(sqlite_store, pack)
    with pytest.raises(ProposalError) as info:
        guard.decide(waive(**arguments))
    assert str(info.value) == message
    assert sqlite_store.count() == 0


def test_arguments_are_in_the_recorded_proposal_and_its_digest(sqlite_store, pack):
    guard = guard_with(sqlite_store, pack)
    economy = guard.decide(waive(key="a"))
    premium = guard.decide(waive(key="b", booking={"cabin": "premium", "nights": 3}))
    assert economy.proposal_digest != premium.proposal_digest
    body = sqlite_store.decision_body(premium.id)
    assert body is not None
    assert body["proposal"]["tool"]["arguments"]["booking"] == {"cabin": "premium", "nights": 3}


def test_a_proposal_without_a_tool_call_cannot_carry_the_arguments_its_rules_read(
    sqlite_store, pack
):
    guard = guard_with(sqlite_store, pack)
    with pytest.raises(ProposalError, match=r"reads tool arguments \(cabin, nights\)"):
        guard.decide(
            {
                "actor": BOT.model_dump(),
                "action": "change_fee_waiver",
                "amount": {"amount": "10.00", "currency": "USD"},
                "idempotency_key": "a",
            }
        )


def test_an_approval_is_rechecked_on_the_arguments_it_was_asked_with(store, pack):
    guard = guard_with(store, pack)
    routed = guard.decide(waive("150.00", key="a"))
    assert routed.outcome is Outcome.ROUTE
    # The re-check evaluates `args.cabin == 'first'` again: without the arguments it could not.
    approved = guard.approvals.approve(routed.id, approver=TINA, note="fine")
    assert approved.status is ApprovalStatus.APPROVED


# Absence ---------------------------------------------------------------------------------------


def test_a_missing_record_is_decided_by_the_rule_that_tests_for_it(store, pack):
    guard = guard_with(store, pack, facts(**{"booking.id": None, "booking.status": None}))
    decision = guard.decide(waive(key="a"))
    assert (decision.outcome, decision.rules) == (Outcome.DENY, ["no-such-booking"])
    assert "there is no such booking" in decision.explanation


def test_a_guarded_limit_on_an_absent_fact_does_not_route_the_decision(store, pack):
    # booking.status is absent: `has(booking.status) && ...` is false, not an evaluation error.
    guard = guard_with(store, pack, facts(**{"booking.status": None}))
    decision = guard.decide(waive(key="a"))
    assert (decision.outcome, decision.rules) == (Outcome.ALLOW, ["cheaper-fare"])
    body = store.decision_body(decision.id)
    assert body is not None
    assert body["context"]["booking.status"] is None


def test_an_unguarded_read_of_an_absent_fact_routes(tmp_path, sqlite_store):
    text = PACK.read_text(encoding="utf-8").replace(
        "when: has(booking.status) && booking.status == 'cancelled'",
        "when: booking.status == 'cancelled'",
    )
    path = tmp_path / "travel.yaml"
    path.write_text(text, encoding="utf-8")
    guard = guard_with(sqlite_store, load_pack(path), facts(**{"booking.status": None}))
    decision = guard.decide(waive(key="a"))
    assert (decision.outcome, decision.rules) == (Outcome.ROUTE, ["discretion.evaluation-error"])
    assert decision.causes == [
        "evaluation error: \"booking.status == 'cancelled'\": booking.status has no value,"
        " so it cannot be decided"
    ]


def test_a_missing_fact_that_is_not_optional_routes_as_context_unavailable(store, pack):
    guard = guard_with(store, pack, facts(**{"customer.tenure_years": None}))
    decision = guard.decide(waive(key="a"))
    assert (decision.outcome, decision.rules) == (
        Outcome.ROUTE,
        ["discretion.context-unavailable"],
    )
    assert decision.causes == ["context field 'customer.tenure_years' is missing"]


class Failing:
    in_process = True

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        raise ConnectionError("bookings service down")


def test_a_provider_failure_routes_and_is_never_read_as_a_missing_record(store, pack):
    guard = guard_with(store, pack, context=Failing())
    decision = guard.decide(waive(key="a"))
    assert (decision.outcome, decision.rules) == (
        Outcome.ROUTE,
        ["discretion.context-unavailable"],
    )
    assert decision.causes == ["context provider failed: ConnectionError: bookings service down"]


def test_a_provider_timeout_routes_and_is_never_read_as_a_missing_record(store, pack):
    # The waiter reports the time as spent at once: the provider has not answered.
    late = TimeoutContext(
        StaticContextProvider(facts()), timeout_s=0.5, wait=lambda event, seconds: False
    )
    guard = guard_with(store, pack, context=late)
    decision = guard.decide(waive(key="a"))
    assert (decision.outcome, decision.rules) == (
        Outcome.ROUTE,
        ["discretion.context-unavailable"],
    )
    assert "did not answer within 0.5 s" in decision.causes[0]


# Decimals and signed money ---------------------------------------------------------------------


def test_a_decimal_fact_compares_exactly_in_its_declared_places(store, pack):
    dearer = {"booking.fare_difference": {"amount": "80.00", "currency": "USD"}}
    guard = guard_with(store, pack, facts(**{"customer.tenure_years": "1.5"}, **dearer))
    short = guard_with(
        store, pack, facts(**{"customer.tenure_years": "1.4"}, **dearer), ids=Counter("other")
    )
    assert guard.decide(waive(key="a")).rules == ["loyal-customer"]
    assert short.decide(waive(key="b")).outcome is Outcome.DENY


def test_a_failed_ground_on_a_decimal_shows_the_value_as_the_rule_reads_it(store, tmp_path):
    text = PACK.read_text(encoding="utf-8")
    assert text.count("when: has(args.miles) && args.miles >= 1000") == 1
    path = tmp_path / "travel.yaml"
    path.write_text(
        text.replace(
            "when: has(args.miles) && args.miles >= 1000", "when: customer.tenure_years >= 25"
        ),
        encoding="utf-8",
    )
    dearer = {"booking.fare_difference": {"amount": "80.00", "currency": "USD"}}
    guard = guard_with(store, load_pack(path), facts(**{"customer.tenure_years": "1.4"}, **dearer))
    decision = guard.decide(waive(key="a", cite="miles-member"))
    assert decision.outcome is not Outcome.ALLOW_EXCEPTION
    assert (
        "reason 'miles-member' does not apply: customer.tenure_years >= 25 does not hold"
        " (customer.tenure_years is 1.4, read by the rules as 14)"
    ) in decision.explanation


def test_a_decimal_fact_with_more_places_than_declared_routes(store, pack):
    guard = guard_with(store, pack, facts(**{"customer.tenure_years": "1.55"}))
    decision = guard.decide(waive(key="a"))
    assert decision.rules == ["discretion.context-unavailable"]
    assert decision.causes == [
        "context field customer.tenure_years: '1.55' has more than 1 decimal places"
    ]


def test_signed_money_is_recorded_as_given_and_seen_in_minor_units(store, pack):
    guard = guard_with(
        store, pack, facts(**{"booking.fare_difference": {"amount": "-0.01", "currency": "USD"}})
    )
    decision = guard.decide(waive(key="a"))
    assert decision.rules == ["cheaper-fare"]
    body = store.decision_body(decision.id)
    assert body is not None
    assert body["context"]["booking.fare_difference"] == {"amount": "-0.01", "currency": "USD"}
    assert body["context"]["customer.tenure_years"] == "0.5"


def test_a_signed_money_fact_in_another_currency_routes(store, pack):
    guard = guard_with(
        store, pack, facts(**{"booking.fare_difference": {"amount": "-5.00", "currency": "EUR"}})
    )
    decision = guard.decide(waive(key="a"))
    assert decision.rules == ["discretion.context-unavailable"]
    assert "is in EUR but the proposal is in USD" in decision.causes[0]


# Load-time errors with file and line -----------------------------------------------------------


def load_error(tmp_path: Path, old: str, new: str) -> tuple[PolicyError, int, Path]:
    source = PACK.read_text(encoding="utf-8")
    assert source.count(old) == 1, old
    text = source.replace(old, new)
    path = tmp_path / "travel.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_pack(path)
    needle = new.strip().splitlines()[0]
    line = next(n for n, row in enumerate(text.splitlines(), 1) if needle in row)
    return info.value, line, path


def test_an_undeclared_argument_in_a_rule_fails_load_with_its_line(tmp_path):
    error, line, path = load_error(
        tmp_path, "when: args.cabin == 'first'", "when: args.seat == 'first'"
    )
    assert (error.path, error.line, error.rule_id) == (str(path), line, "never-first-class")
    assert "unknown field 'args.seat'" in str(error)
    assert "args.cabin" in str(error)


def test_an_argument_used_as_another_type_fails_load_with_its_line(tmp_path):
    error, line, _ = load_error(tmp_path, "args.nights <= 14", "args.nights <= '14'")
    assert error.line == line
    assert "no matching overload" in str(error)


def test_a_tool_mapping_an_undeclared_argument_fails_load_with_its_line(tmp_path):
    error, line, _ = load_error(
        tmp_path, "          nights: booking.nights", "          seat: booking.seat"
    )
    assert error.line == line
    assert "maps argument 'seat', which action 'change_fee_waiver' does not declare" in str(error)


def test_an_argument_read_from_the_amount_must_be_money(tmp_path):
    error, _, _ = load_error(tmp_path, "          cabin: booking.cabin", "          cabin: fee")
    assert "reads 'fee', which tool 'waive_change_fee' maps as the amount" in str(error)


def test_has_on_a_fact_that_is_never_absent_fails_load(tmp_path):
    error, line, _ = load_error(
        tmp_path,
        "when: customer.tenure_years >= 15",
        "when: has(customer.tenure_years) && customer.tenure_years >= 15",
    )
    assert (error.line, error.rule_id) == (line, "loyal-customer")
    assert "'customer.tenure_years' is never absent" in str(error)


def test_has_on_a_required_argument_fails_load(tmp_path):
    error, line, _ = load_error(
        tmp_path, "when: args.cabin == 'first'", "when: has(args.cabin) && args.cabin == 'first'"
    )
    assert error.line == line
    assert "'args.cabin' is never absent" in str(error)


def test_a_decimal_without_places_fails_load_with_its_line(tmp_path):
    error, line, _ = load_error(
        tmp_path,
        "customer.tenure_years: {type: decimal, places: 1}",
        "customer.tenure_years: decimal",
    )
    assert error.line == line
    assert "is a decimal but says no places" in str(error)


def test_signed_is_for_money_only(tmp_path):
    error, line, _ = load_error(tmp_path, "nights: int\n", "nights: {type: int, signed: true}\n")
    assert error.line == line
    assert "`signed` is for money" in str(error)


def test_replay_reads_absent_facts_decimals_and_signed_money_back_the_same(store, pack):
    guard_with(store, pack, facts(**{"booking.status": None})).decide(waive(key="a"))
    guard_with(store, pack, facts(**{"booking.id": None}), ids=Counter("b")).decide(
        waive(key="b", paid_with=["card"], miles="12.5")
    )
    report = replay(store, pack)
    assert report.replayed == 2
    assert report.changes == ()


def test_a_context_field_may_not_take_a_name_under_args(tmp_path):
    error, line, _ = load_error(
        tmp_path, "  booking.status: {type: string, optional: true}", "  args.status: string"
    )
    assert error.line == line
    assert "names under 'args.' are the tool arguments an action declares" in str(error)
