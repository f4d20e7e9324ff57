"""Rules that read the reason the rationale cites (`rationale.reason`).

"Decline a goodwill credit the assistant asks for" and "decline a reason we do not have" could
not be written: a reason only people grant routed the AI's case to a person, and an unknown
reason routed to whoever grants one that holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import NOW, Counter, FakeClock
from discretion import Guard, Outcome, PolicyError, SqlStore, load_pack
from discretion.context import StaticContextProvider

PACK = """
pack: cited
currency: USD
context:
  order.total: money
roles:
  - id: ai_agent
    ai: true
    authority:
      credit: {standard: "0", exception: "50.00"}
  - id: agent
    authority:
      credit: {standard: "0", exception: "200.00"}
actions:
  credit:
    tools:
      - {name: give_credit, amount: amount, currency: currency}
    reads: [order.total]
    hard_limits:
      - id: ai-goodwill
        when: actor.is_ai && rationale.reason == 'goodwill'
        message: goodwill is a person's call; the assistant does not ask for it
      - id: unknown-reason
        when: rationale.reason != '' && !(rationale.reason in ['outage', 'goodwill'])
        message: we grant credits for an outage or as goodwill only
    exceptions:
      - id: outage
        when: "true"
        max_amount: order.total
      - id: goodwill
        when: "true"
        max_amount: order.total
        granted_by: [agent]
"""


@pytest.fixture
def guard(tmp_path: Path, store: SqlStore) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    facts = StaticContextProvider({"order.total": {"amount": "100.00", "currency": "USD"}})
    return Guard(load_pack(path), store=store, context=facts, clock=FakeClock(NOW), ids=Counter())


def credit(reason: str | None, key: str, *, role: str = "ai_agent") -> dict[str, Any]:
    return {
        "actor": {"id": role, "role": role, "is_ai": role == "ai_agent"},
        "tool": {"name": "give_credit", "arguments": {"amount": "20.00", "currency": "USD"}},
        "rationale": {"reason": reason, "text": "the customer asked"},
        "idempotency_key": key,
    }


def test_a_rule_reads_the_reason_the_rationale_cites(guard: Guard) -> None:
    goodwill = guard.decide(credit("goodwill", "a"))
    assert (goodwill.outcome, goodwill.rules) == (Outcome.DENY, ["ai-goodwill"])
    assert "goodwill is a person's call" in goodwill.explanation

    invented = guard.decide(credit("loyalty", "b"))
    assert (invented.outcome, invented.rules) == (Outcome.DENY, ["unknown-reason"])

    outage = guard.decide(credit("outage", "c"))
    assert (outage.outcome, outage.rules) == (
        Outcome.ALLOW_EXCEPTION,
        ["discretion.not-standard", "outage"],
    )

    # No reason cited reads as "": neither limit holds, and the case routes for one.
    uncited = guard.decide(credit(None, "d"))
    assert uncited.outcome is Outcome.ROUTE
    # A person citing goodwill is not the assistant.
    person = guard.decide(credit("goodwill", "e", role="agent"))
    assert person.outcome is Outcome.ALLOW_EXCEPTION
    body = guard.store.decision_body(goodwill.id)
    assert body is not None
    assert body["proposal"]["rationale"]["reason"] == "goodwill"


def test_rationale_reason_is_a_string_the_pack_cannot_declare_as_a_fact(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(
        PACK.replace(
            "  order.total: money\n", "  order.total: money\n  rationale.reason: string\n"
        ),
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match=r"rationale\.reason"):
        load_pack(path)
