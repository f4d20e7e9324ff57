"""Structured facts and arguments: records with typed fields, read with exists, all, filter, map.

The returns test pack (`tests/packs/returns.yaml`) declares an order's items and payments as
lists of records, and an exchange as a record argument.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import NOW, Counter, FakeClock
from discretion import Actor, Guard, Outcome, PolicyError, ProposalError, load_pack
from discretion.context import StaticContextProvider
from discretion.evals import replay

HERE = Path(__file__).resolve().parent.parent
PACK = HERE / "packs" / "returns.yaml"
BOT = Actor(id="bot-1", role="ai_agent")


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


def item(sku: str, price: str, days_ago: int, options: list[str] | None = None) -> dict[str, Any]:
    return {
        "sku": sku,
        "product": sku.split("-")[0],
        "price": usd(price),
        "delivered_at": (NOW - timedelta(days=days_ago)).isoformat(),
        "options": options or [],
    }


def facts(**overrides: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "order.items": [
            item("shoe-42", "80.00", 5, ["shoe-43", "shoe-44"]),
            item("hat-m", "30.00", 45, ["hat-l"]),
        ],
        "order.payments": [{"method": "card", "amount": usd("110.00")}],
    }
    found.update(overrides)
    return found


def refund(
    amount: str, sku: str, *, key: str, cite: str | None = None, **arguments: Any
) -> dict[str, Any]:
    return {
        "actor": BOT.model_dump(),
        "tool": {
            "name": "refund_return",
            "arguments": {"amount": amount, "order_id": "o-1", "sku": sku, **arguments},
        },
        "rationale": {"reason": cite, "text": "customer asked"},
        "idempotency_key": key,
    }


@pytest.fixture(scope="module")
def pack():
    return load_pack(PACK)


def guard_with(store, pack, found: dict[str, Any] | None = None, prefix: str = "dec") -> Guard:
    context = StaticContextProvider(facts() if found is None else found)
    return Guard(pack, store=store, context=context, clock=FakeClock(NOW), ids=Counter(prefix))


def test_exists_filter_and_map_over_a_list_of_records_decide_a_standard_rule(store, pack):
    guard = guard_with(store, pack)
    recent = guard.decide(refund("80.00", "shoe-42", key="a"))
    above_its_price = guard.decide(refund("80.01", "shoe-42", key="b"))
    old = guard.decide(refund("30.00", "hat-m", key="c"))
    assert (recent.outcome, recent.rules) == (Outcome.ALLOW, ["delivered-within-30-days"])
    # The rule's maximum is the returned item's own price, read with filter and map.
    assert "delivered-within-30-days" not in above_its_price.rules
    assert "delivered-within-30-days" not in old.rules


def test_a_hard_limit_reads_a_list_of_records(store, pack):
    guard = guard_with(store, pack)
    missing = guard.decide(refund("10.00", "sock-1", key="a"))
    assert (missing.outcome, missing.rules) == (Outcome.DENY, ["not-on-the-order"])
    paid = [
        {"method": "card", "amount": usd("60.00")},
        {"method": "gift_card", "amount": usd("50.00")},
    ]
    gift = guard_with(store, pack, facts(**{"order.payments": paid}), prefix="gift")
    decision = gift.decide(refund("10.00", "shoe-42", key="b"))
    assert (decision.outcome, decision.rules) == (Outcome.DENY, ["gift-card-orders"])


def test_all_over_records_grants_a_reason(store, pack):
    guard = guard_with(store, pack)
    old = guard.decide(refund("30.00", "hat-m", key="a", cite="all-paid-by-card"))
    assert (old.outcome, old.rules) == (
        Outcome.ALLOW_EXCEPTION,
        ["discretion.not-standard", "all-paid-by-card"],
    )


def test_a_record_argument_is_read_against_the_records_of_the_order(store, pack):
    paid = [{"method": "paypal", "amount": usd("110.00")}]
    guard = guard_with(store, pack, facts(**{"order.payments": paid}))
    # The hat was delivered 45 days ago: only the exchange reason can allow it.
    same = guard.decide(
        refund(
            "30.00",
            "hat-m",
            key="a",
            cite="same-product-exchange",
            exchange={"give_back": "hat-m", "take": "hat-l"},
        )
    )
    other = guard.decide(
        refund(
            "30.00",
            "hat-m",
            key="b",
            cite="same-product-exchange",
            exchange={"give_back": "hat-m", "take": "shoe-44"},
        )
    )
    assert same.outcome is Outcome.ALLOW_EXCEPTION
    assert same.rules[-1] == "same-product-exchange"
    assert other.outcome is Outcome.DENY
    assert "discretion.reason-not-applicable" in other.rules


def test_a_record_argument_of_another_shape_is_refused(sqlite_store, pack):
    guard = guard_with(sqlite_store, pack)
    with pytest.raises(ProposalError) as info:
        guard.decide(refund("10.00", "shoe-42", key="a", exchange={"give_back": "shoe-42"}))
    assert str(info.value) == (
        "tool 'refund_return' argument exchange.take is missing; every field of a swap is required"
    )
    with pytest.raises(ProposalError, match="a list where a swap record belongs"):
        guard.decide(refund("10.00", "shoe-42", key="b", exchange=[]))


def test_records_are_recorded_canonically_with_only_their_declared_fields(store, pack):
    plain = guard_with(store, pack)
    # The same records, keys in another order and with a field the pack does not declare.
    shuffled = [
        {**dict(reversed(list(line.items()))), "warehouse": "w-9"}
        for line in facts()["order.items"]
    ]
    noisy = guard_with(store, pack, facts(**{"order.items": shuffled}), prefix="noisy")
    first = plain.decide(refund("80.00", "shoe-42", key="a"))
    second = noisy.decide(refund("80.00", "shoe-42", key="b"))
    assert first.context_digest == second.context_digest
    body = store.decision_body(second.id)
    assert body is not None
    assert body["context"]["order.items"][0] == {
        "sku": "shoe-42",
        "product": "shoe",
        "price": {"amount": "80.00", "currency": "USD"},
        "delivered_at": (NOW - timedelta(days=5)).isoformat(),
        "options": ["shoe-43", "shoe-44"],
    }


def test_a_record_missing_a_field_routes_naming_it(store, pack):
    lines = facts()["order.items"]
    del lines[1]["price"]
    guard = guard_with(store, pack, facts(**{"order.items": lines}))
    decision = guard.decide(refund("10.00", "shoe-42", key="a"))
    assert (decision.outcome, decision.rules) == (
        Outcome.ROUTE,
        ["discretion.context-unavailable"],
    )
    assert decision.causes == [
        "context field order.items[1].price is missing; every field of a item is required"
    ]


def test_money_in_a_record_in_another_currency_routes(store, pack):
    paid = [{"method": "card", "amount": {"amount": "110.00", "currency": "EUR"}}]
    guard = guard_with(store, pack, facts(**{"order.payments": paid}))
    decision = guard.decide(refund("10.00", "shoe-42", key="a"))
    assert decision.rules == ["discretion.context-unavailable"]
    assert "order.payments[0].amount is in EUR but the proposal is in USD" in decision.causes[0]


# Load-time errors ------------------------------------------------------------------------------


def load_error(tmp_path: Path, old: str, new: str) -> tuple[PolicyError, int]:
    source = PACK.read_text(encoding="utf-8")
    assert source.count(old) == 1, old
    text = source.replace(old, new)
    path = tmp_path / "returns.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_pack(path)
    needle = new.strip().splitlines()[0]
    return info.value, next(n for n, row in enumerate(text.splitlines(), 1) if needle in row)


def test_a_field_a_record_does_not_have_fails_load_with_its_line(tmp_path):
    error, line = load_error(
        tmp_path,
        "when: order.payments.exists(p, p.method == 'gift_card')",
        "when: order.payments.exists(p, p.card == 'gift_card')",
    )
    assert (error.line, error.rule_id) == (line, "gift-card-orders")
    assert "undefined field 'card' not found in struct 'discretion.records.payment'" in str(error)


def test_a_record_field_compared_with_another_type_fails_load_with_its_line(tmp_path):
    error, line = load_error(
        tmp_path,
        "when: order.payments.all(p, p.method == 'card')",
        "when: order.payments.all(p, p.amount == 'card')",
    )
    assert (error.line, error.rule_id) == (line, "all-paid-by-card")
    assert "no matching overload" in str(error)


def test_an_undeclared_record_type_fails_load_with_its_line(tmp_path):
    error, line = load_error(tmp_path, "order.items: list[item]", "order.items: list[itme]")
    assert error.line == line
    assert "has type 'list[itme]', which is neither a type" in str(error)
    assert "nor a record the pack declares under records (item, payment, swap)" in str(error)


def test_a_record_field_with_an_unknown_type_fails_load_with_its_line(tmp_path):
    error, line = load_error(tmp_path, "      method: string", "      method: text")
    assert error.line == line
    assert "field 'method' of record 'payment' has type 'text'" in str(error)


def test_a_record_field_named_as_a_cel_word_fails_load(tmp_path):
    error, line = load_error(tmp_path, "      take: string", "      in: string")
    assert error.line == line
    assert "'in' is a word CEL reserves" in str(error)


def test_replay_reads_the_recorded_records_and_arguments_back_to_the_same_decisions(store, pack):
    guard = guard_with(store, pack)
    guard.decide(refund("80.00", "shoe-42", key="a"))
    guard.decide(refund("10.00", "sock-1", key="b"))
    guard.decide(
        refund(
            "30.00",
            "hat-m",
            key="c",
            cite="same-product-exchange",
            exchange={"give_back": "hat-m", "take": "hat-l"},
        )
    )
    report = replay(store, pack)
    assert report.replayed == 3
    assert report.changes == ()


def test_every_member_of_a_record_is_present_even_at_its_zero_value(store, tmp_path):
    # Members are required, so `has()` holds for each: an empty product name or a price of
    # 0.00 is a value, not an absence (proto3 alone would call a zero value absent).
    text = PACK.read_text(encoding="utf-8")
    anchor = "    hard_limits:\n"
    assert text.count(anchor) == 1
    rule = (
        "      - id: a-line-without-product\n"
        "        when: order.items.exists(i, !has(i.product) || !has(i.price))\n"
    )
    path = tmp_path / "returns.yaml"
    path.write_text(text.replace(anchor, anchor + rule), encoding="utf-8")
    lines = [{**item("shoe-42", "0.00", 5), "product": ""}, item("hat-m", "30.00", 5)]
    guard = guard_with(store, load_pack(path), facts(**{"order.items": lines}))
    decision = guard.decide(refund("20.00", "hat-m", key="a"))
    assert (decision.outcome, decision.rules) == (Outcome.ALLOW, ["delivered-within-30-days"])


def test_an_explanation_names_records_by_type_and_count_never_their_contents(store, pack):
    """A ground over a list of records once printed each record's Python repr, every member
    of every item included, to the agent."""
    guard = guard_with(store, pack)
    old = guard.decide(refund("30.00", "hat-m", key="c"))
    assert "2 item records" in old.explanation
    assert "Record(" not in old.explanation
    assert "RecordType" not in old.explanation
    assert "hat-l" not in old.explanation
