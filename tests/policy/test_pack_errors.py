"""Pack mistakes are told in our words: file and line, the path as written, and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SHOP_PACK
from discretion import load_pack
from discretion.errors import PolicyError
from discretion.policy._schema import ActionSpec

SHOP = SHOP_PACK.read_text(encoding="utf-8")


def error_of(tmp_path: Path, *changes: tuple[str, str]) -> tuple[str, Path, str]:
    """The message loading the shop pack with `changes` raises, its file, and the text."""
    text = SHOP
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "shop.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_pack(path)
    return str(caught.value), path, text


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_misspelt_type_of_a_context_field_names_the_choices_and_the_likely_one(tmp_path):
    message, path, text = error_of(tmp_path, ("  order.total: money\n", "  order.total: monee\n"))
    assert message.startswith(f"{path}:{line_of(text, 'monee')}: context field 'order.total'")
    assert "has type 'monee'" in message
    assert message.endswith("(did you mean 'money'?)")


def test_a_field_spec_error_speaks_of_the_field_not_of_pydantics_models(tmp_path):
    message, path, text = error_of(
        tmp_path, ("{type: timestamp, nullable: true}", "{type: date, nullable: true}")
    )
    assert message.startswith(
        f"{path}:{line_of(text, 'type: date')}: context field 'order.delivered_at' has type"
        " 'date', which is neither a type (bool, decimal, duration, int,"
    )
    assert "FieldSpec" not in message


def test_an_unknown_key_gets_did_you_mean_and_the_keys_allowed_there(tmp_path):
    message, path, text = error_of(tmp_path, ("    hard_limits:\n", "    hard_limit:\n"))
    head, allowed = message.split("; allowed here: ")
    assert head == (
        f"{path}:{line_of(text, 'hard_limit:')}: actions.refund.hard_limit: unknown key"
        " 'hard_limit' (did you mean 'hard_limits'?)"
    )
    # Every key an action may have, and nothing else.
    assert allowed.split(", ") == sorted(ActionSpec.model_fields)


def test_a_misspelt_required_key_is_said_once_as_the_misspelling(tmp_path):
    message, path, text = error_of(tmp_path, ("  - id: tier1\n", "  - idd: tier1\n"))
    assert message.startswith(
        f"{path}:{line_of(text, 'idd:')}: roles[1].idd: unknown key 'idd' (did you mean 'id'?)"
    )
    assert "missing" not in message
    assert "\n" not in message


def test_every_fault_is_listed_in_file_order_with_its_line(tmp_path):
    message, path, text = error_of(
        tmp_path,
        ("    window: 30d\n", "    window: 30 days\n"),
        ("    ai: true\n", "    ai: yes please\n"),
    )
    first, also = message.splitlines()
    assert first == (
        f"{path}:{line_of(text, 'yes please')}: roles[0].ai: expected true or false, got the"
        " text 'yes please'"
    )
    assert also == (
        f"  also {path}:{line_of(text, 'window: 30 days')}: budgets[0].window: value '30 days'"
        " should be a whole number then s, m (minutes), h or d, such as 30d or 12h, whole"
        " months or years such as 12 months or 1 year, a calendar period: calendar day, week,"
        " month, quarter or year, or ever"
    )


def test_a_cel_type_error_over_money_says_money_is_integer_cents(tmp_path):
    message, path, text = error_of(
        tmp_path, ("amount > order.total + order.shipping", "amount > order.total * 1.1")
    )
    assert message.startswith(f"{path}:{line_of(text, '* 1.1')}, rule 'refund-above-order':")
    assert "applied to '(int, double)'" in message
    assert message.endswith(
        "hint: money is integer minor units (cents) in CEL, so amount and order.total are"
        " ints: 649.00 is 64900. Keep money arithmetic in whole numbers, say `x * 11 / 10` for"
        " `x * 1.1`, and compare with whole cents (`amount > 5000` for 50.00)"
    )


def test_a_cel_type_error_without_money_gets_no_money_hint(tmp_path):
    message, _, _ = error_of(
        tmp_path, ("when: shipment.status == 'lost'", "when: shipment.status * 1.5 > 2.0")
    )
    assert "no matching overload" in message
    assert "minor units" not in message


def test_a_cel_type_error_over_a_decimal_says_it_is_a_scaled_int(tmp_path):
    source = (
        "pack: p\ncurrency: USD\ncontext:\n  customer.uptime: {type: decimal, places: 2}\n"
        "roles:\n  - id: ai_agent\n    ai: true\n    authority: {credit: {standard: '10.00'}}\n"
        "actions:\n  credit:\n    tools: [{name: credit, amount: amount}]\n"
        "    reads: [customer.uptime]\n    standard:\n"
        "      - id: outage\n        when: customer.uptime < 99.9\n"
    )
    path = tmp_path / "pack.yaml"
    path.write_text(source, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_pack(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:15, rule 'outage':")
    assert "minor units" not in message
    assert message.endswith(
        "hint: customer.uptime is a decimal of 2 places, so CEL sees it as an int of 1/100:"
        " 1.5 is 150. Compare with the scaled whole number (`customer.uptime < 9990` for 99.9)"
    )


def test_a_field_the_pack_declares_but_the_action_does_not_read_says_add_it_to_reads(tmp_path):
    message, path, text = error_of(
        tmp_path,
        ("when: customer.tier == 'gold'", "when: customer.tier == 'gold' && order.total > 0"),
    )
    assert message.startswith(f"{path}:{line_of(text, 'order.total > 0')}")
    assert "field 'order.total' in" in message
    assert message.endswith(
        "is declared by the pack, but this action does not read it; add it to the action's reads"
    )


def test_a_function_cel_does_not_have_is_called_an_unknown_function(tmp_path):
    message, _, _ = error_of(
        tmp_path, ("when: customer.tier == 'gold'", "when: math.sum([1, 2]) > 0")
    )
    assert "unknown function math.sum() in 'math.sum([1, 2]) > 0'" in message
    assert "unknown field" not in message


@pytest.mark.parametrize(
    ("literal", "hint"),
    [
        ("duration('30d')", "duration('48h') for two days"),
        ("timestamp('2026-01-01')", "timestamp('2026-01-01T00:00:00Z')"),
    ],
)
def test_a_duration_or_timestamp_cel_cannot_read_is_refused_at_load(tmp_path, literal, hint):
    """`duration('30d')` type-checks, then fails on every decision: refused where it is written."""
    message, path, text = error_of(
        tmp_path,
        ("now - order.delivered_at <= duration('720h')", f"now - order.delivered_at <= {literal}")
        if literal.startswith("duration")
        else ("now - order.delivered_at <= duration('720h')", f"now >= {literal}"),
    )
    assert message.startswith(f"{path}:{line_of(text, literal)}, rule 'refund-within-30-days':")
    assert f"{literal} in " in message
    assert hint in message


def test_a_budget_of_no_actions_fails_at_load(tmp_path):
    path = tmp_path / "pack.yaml"
    path.write_text(
        SHOP.replace("  - id: actor-daily\n", "  - id: actor-daily\n    actions: []\n"),
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match="cap nothing"):
        load_pack(path)


@pytest.mark.parametrize("key", ["actions", "outcomes", "reasons"])
def test_a_total_of_an_empty_list_fails_at_load(tmp_path, key):
    path = tmp_path / "pack.yaml"
    path.write_text(
        SHOP + f"totals:\n  order.nothing: {{per: actor, window: 1d, {key}: []}}\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match=f"counts no {key} .* always be zero"):
        load_pack(path)


def test_a_budget_of_no_outcomes_fails_at_load(tmp_path):
    path = tmp_path / "pack.yaml"
    path.write_text(
        SHOP.replace("  - id: actor-daily\n", "  - id: actor-daily\n    outcomes: []\n"),
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match="counts no outcomes"):
        load_pack(path)


def test_a_tool_name_longer_than_a_proposal_may_carry_fails_at_load(tmp_path):
    text = SHOP_PACK.read_text(encoding="utf-8").replace("issue_refund", "t" * 101, 1)
    (tmp_path / "pack.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match="at most 100 characters"):
        load_pack(tmp_path / "pack.yaml")
