"""`asked_at`: a deadline on the request holds when a person approves after it passed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from conftest import NOW, FakeClock
from discretion import Actor, Guard, Outcome, SqlStore, StaleApproval, load_pack
from discretion.context import StaticContextProvider

PACK = """
pack: asked-at
currency: USD
context:
  incident.ended_at: timestamp
roles:
  - {id: ai_agent, ai: true, authority: {credit: {standard: "100.00"}}}
  - {id: lead, authority: {credit: {standard: "1000.00"}}}
actions:
  credit:
    tools: [{name: issue_credit, amount: amount}]
    reads: [incident.ended_at]
    hard_limits:
      - id: filed-late
        when: WHEN > incident.ended_at + duration('1440h')
    standard:
      - {id: sla, when: "true"}
"""

LEAD = Actor(id="lee", role="lead", is_ai=False)


def guard(tmp_path: Path, store: SqlStore, clock: FakeClock, when: str) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK.replace("WHEN", when), encoding="utf-8")
    # The incident ended 59 and a half days before the request.
    facts = {"incident.ended_at": (NOW - timedelta(days=59, hours=12)).isoformat()}
    return Guard(load_pack(path), store=store, context=StaticContextProvider(facts), clock=clock)


def credit(amount: str) -> dict:
    return {
        "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
        "tool": {"name": "issue_credit", "arguments": {"amount": amount}},
    }


def test_a_request_in_time_approved_after_the_deadline_stands(tmp_path, store):
    clock = FakeClock(NOW)
    g = guard(tmp_path, store, clock, "asked_at")
    routed = g.decide(credit("500.00"))
    assert (routed.outcome, routed.required_role) == (Outcome.ROUTE, "lead")
    clock.advance(hours=23)  # past the 60 days; the request was not
    approved = g.approvals.approve(routed.id, approver=LEAD, note="in time when asked")
    assert approved.status.value == "approved"
    # Asked now, it is late.
    assert g.decide(credit("5.00")).rules == ["filed-late"]


def test_now_reads_the_time_of_the_approval(tmp_path, store):
    clock = FakeClock(NOW)
    g = guard(tmp_path, store, clock, "now")
    routed = g.decide(credit("500.00"))
    clock.advance(hours=23)
    with pytest.raises(StaleApproval, match="filed-late"):
        g.approvals.approve(routed.id, approver=LEAD, note="too late now")
