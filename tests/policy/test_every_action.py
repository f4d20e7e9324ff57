"""`every_action`: hard limits and reviews written once, each action's as its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import NOW, Counter, FakeClock
from discretion import Guard, Outcome, PolicyError, SqlStore, load_pack
from discretion.context import StaticContextProvider

PACK = Path(__file__).resolve().parent.parent / "packs" / "every_action.yaml"
SOURCE = PACK.read_text(encoding="utf-8")
GOOD = {
    "customer.standing": "good",
    "customer.fraud_review": False,
    "order.total": {"amount": "100.00", "currency": "USD"},
}
TOOLS = ("issue_refund", "apply_credit")


def call(tool: str, amount: str = "20.00") -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent"},
        "tool": {"name": tool, "arguments": {"amount": amount, "currency": "USD"}},
    }


def guard(store: SqlStore, facts: dict[str, Any], text: str = SOURCE, tmp: Path | None = None):
    pack = load_pack(PACK) if tmp is None else load_pack(write(tmp, text))
    return Guard(
        pack, store=store, context=StaticContextProvider(facts), clock=FakeClock(NOW), ids=Counter()
    )


def write(folder: Path, text: str) -> Path:
    path = folder / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_each_action_reads_and_holds_the_shared_rules_first() -> None:
    pack = load_pack(PACK)

    refund, credit = pack.actions["refund"], pack.actions["credit"]

    assert refund.reads == ("order.total", "customer.standing", "customer.fraud_review")
    assert [r.id for r in refund.hard_limits] == [
        "account.not-in-good-standing",
        "refund.above-paid",
    ]
    assert [r.id for r in credit.hard_limits] == ["account.not-in-good-standing"]
    assert [r.id for r in credit.reviews] == ["fraud-review"]
    # One rule, whichever actions hold it: counted once (coverage, `pack validate`).
    assert pack.rule_ids().count("fraud-review") == 1


@pytest.mark.parametrize("tool", TOOLS)
def test_a_shared_hard_limit_denies_every_action(store: SqlStore, tool: str) -> None:
    decision = guard(store, GOOD | {"customer.standing": "collections"}).decide(call(tool))

    assert decision.outcome is Outcome.DENY
    assert decision.rules == ["account.not-in-good-standing"]


@pytest.mark.parametrize("tool", TOOLS)
def test_a_shared_review_routes_every_action_to_its_role(store: SqlStore, tool: str) -> None:
    decision = guard(store, GOOD | {"customer.fraud_review": True}).decide(call(tool))

    assert (decision.outcome, decision.required_role) == (Outcome.ROUTE, "fraud_team")
    assert "fraud-review" in decision.rules


@pytest.mark.parametrize("tool", TOOLS)
def test_without_them_each_action_decides_as_its_own_rules_say(store: SqlStore, tool: str) -> None:
    assert guard(store, GOOD).decide(call(tool)).outcome is Outcome.ALLOW


def test_actions_names_which_actions_hold_them(store: SqlStore, tmp_path: Path) -> None:
    text = SOURCE.replace("every_action:\n", "every_action:\n  actions: [refund]\n")
    held = guard(store, GOOD | {"customer.standing": "collections"}, text, tmp_path)

    assert held.decide(call("issue_refund")).outcome is Outcome.DENY
    assert held.decide(call("apply_credit")).outcome is Outcome.ALLOW
    assert held.pack.actions["credit"].reads == ()


def line_of(text: str, needle: str) -> int:
    """The line of the last place `needle` is on."""
    return max(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "message", "at"),
    [
        (
            "when: customer.standing in ['charged_off', 'collections']",
            "when: customer.standng == 'x'",
            "unknown field 'customer.standng'",
            "when: customer.standng",
        ),
        (
            "every_action:\n",
            "every_action:\n  actions: [refund, refnd]\n",
            "every_action names action 'refnd', which is not an action",
            "actions: [refund, refnd]",
        ),
        (
            "by: fraud_team",
            "by: ai_agent",
            "review names role 'ai_agent', which AI agents hold",
            "by: ai_agent",
        ),
        (
            "      - id: refund.any\n",
            "      - id: fraud-review\n",
            "rule id is every_action's already; action 'refund' names its own rules apart",
            "      - id: fraud-review",
        ),
    ],
)
def test_a_fault_in_a_shared_rule_names_where_it_is_written(
    tmp_path: Path, old: str, new: str, message: str, at: str
) -> None:
    fails_at(tmp_path, SOURCE, old, new, message, at)


def fails_at(tmp_path: Path, source: str, old: str, new: str, message: str, at: str) -> None:
    """`source` with `old` made `new` fails to load with `message`, naming the line of `at`."""
    text = source.replace(old, new)
    assert text != source
    path = write(tmp_path, text)

    with pytest.raises(PolicyError, match=message) as caught:
        load_pack(path)

    assert caught.value.path == str(path)
    assert caught.value.line == line_of(text, at)


def test_an_actions_own_rule_never_shares_an_id_with_a_shared_one_on_one_line(
    tmp_path: Path,
) -> None:
    """A pack written on one line (JSON is YAML) put both rules on line 1: the one-id, one-line
    tolerance for a shared rule let an action's own rule take its id."""
    pack = yaml.safe_load(SOURCE)
    pack["actions"]["credit"]["hard_limits"] = [{"id": "fraud-review", "when": "false"}]
    path = write(tmp_path, json.dumps(pack))

    with pytest.raises(PolicyError, match="rule id is every_action's already") as caught:
        load_pack(path)

    assert caught.value.rule_id == "fraud-review"


LISTED = SOURCE.replace(
    "every_action:\n  reads: [customer.standing, customer.fraud_review]\n",
    "every_action:\n  - reads: [customer.standing, customer.fraud_review]\n",
).replace(
    "  hard_limits:\n    - id: account.not-in-good-standing\n"
    "      when: customer.standing in ['charged_off', 'collections']\n"
    "  reviews:\n    - id: fraud-review\n      when: customer.fraud_review\n"
    "      by: fraud_team\n      only: true\n",
    "    hard_limits:\n      - id: account.not-in-good-standing\n"
    "        when: customer.standing in ['charged_off', 'collections']\n"
    "    reviews:\n      - id: fraud-review\n        when: customer.fraud_review\n"
    "        by: fraud_team\n        only: true\n"
    "  # Money actions only (the refund, here): never twice what the order cost.\n"
    "  - actions: [refund]\n    reads: [order.total]\n    hard_limits:\n"
    "      - id: money.twice-the-order\n        when: amount > 2 * order.total\n",
)
"""The shared rules as two blocks: one for every action, one for the refund alone."""


def test_every_action_may_be_blocks_each_for_the_actions_it_names(
    store: SqlStore, tmp_path: Path
) -> None:
    assert "  - actions: [refund]" in LISTED
    pack = load_pack(write(tmp_path, LISTED))
    refund, credit = pack.actions["refund"], pack.actions["credit"]

    # In the order they are written: the first block's, the second's, then the action's own.
    assert [r.id for r in refund.hard_limits] == [
        "account.not-in-good-standing",
        "money.twice-the-order",
        "refund.above-paid",
    ]
    assert refund.reads == ("order.total", "customer.standing", "customer.fraud_review")
    assert [r.id for r in credit.hard_limits] == ["account.not-in-good-standing"]
    assert credit.reads == ("customer.standing", "customer.fraud_review")
    held = guard(store, GOOD | {"customer.standing": "collections"}, LISTED, tmp_path)
    assert held.decide(call("apply_credit")).rules == ["account.not-in-good-standing"]


@pytest.mark.parametrize(
    ("old", "new", "message", "at"),
    [
        (
            "        when: amount > 2 * order.total\n",
            "        when: amount > 2 * order.totl\n",
            "unknown field 'order.totl'",
            "when: amount > 2 * order.totl",
        ),
        (
            "      - id: money.twice-the-order\n",
            "      - id: account.not-in-good-standing\n",
            "rule id is used twice in every_action",
            "      - id: account.not-in-good-standing",
        ),
        (
            "  - actions: [refund]\n",
            "  - actions: [refnd]\n",
            "every_action names action 'refnd', which is not an action",
            "actions: [refnd]",
        ),
    ],
)
def test_a_fault_in_a_later_block_names_where_it_is_written(
    tmp_path: Path, old: str, new: str, message: str, at: str
) -> None:
    fails_at(tmp_path, LISTED, old, new, message, at)
