"""One reader of tool arguments: every entry point reads a tool call the same way.

Decide, the integration governor, the approval re-check and replay all reach a tool call's
arguments through the pipeline's `normalise`: a dotted path into nested arguments gives each
the same amount and ids, and a list or an object where an id or an amount belongs is the same
ProposalError from each (a re-check refuses it as stale, replay reports it as an error).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from conftest import NOW, good_facts, shop_pack_with
from discretion import Actor, Guard, Money, ProposalError, StaleApproval
from discretion.context import ContextRequest
from discretion.evals import replay
from discretion.integrations import Governor, ToolCallInfo
from discretion.lineage import digest
from discretion.pipeline import normalise
from discretion.store import ApprovalRow, DecisionRecord

BOT = Actor(id="bot-1", role="ai_agent", is_ai=True)
TINA = Actor(id="tina", role="tier1", is_ai=False)

NESTED_TOOL = """      - name: refund_order
        amount: refund.amount
        currency: refund.currency
        customer: customer
        case: ticket
        order: order.id
"""


class Recording:
    """Context that records which records each request names."""

    in_process = True

    def __init__(self) -> None:
        self.named: list[tuple[str | None, str | None, str | None]] = []

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        self.named.append((request.customer_id, request.case_id, request.order_id))
        return good_facts()


@pytest.fixture
def nested_pack(tmp_path):
    return shop_pack_with(
        tmp_path, "        order: order_id\n", "        order: order_id\n" + NESTED_TOOL
    )


@pytest.fixture
def recording() -> Recording:
    return Recording()


@pytest.fixture
def guard(nested_pack, store, clock, recording) -> Guard:
    return Guard(nested_pack, store=store, clock=clock, context=recording)


def arguments(amount: Any = "40.00", order: Any = None) -> dict[str, Any]:
    return {
        "refund": {"amount": amount, "currency": "USD"},
        "customer": "c-1",
        "ticket": "case-1",
        "order": {"id": "o-1"} if order is None else order,
    }


def proposal(args: dict[str, Any], key: str = "k-1") -> dict[str, Any]:
    return {
        "actor": BOT.model_dump(),
        "tool": {"name": "refund_order", "arguments": args},
        "idempotency_key": key,
    }


SMUGGLED = {
    "order-as-list": arguments(order=["o-1"]),
    "order-id-as-list": arguments(order={"id": ["o-1"]}),
    "order-id-as-object": arguments(order={"id": {"id": "o-1"}}),
    "amount-as-object": arguments(amount={"value": "40.00"}),
    "amount-as-list": arguments(amount=["40.00"]),
}


def the_readers_answer(guard: Guard, args: dict[str, Any]) -> str:
    with pytest.raises(ProposalError) as raised:
        normalise(guard.pack, proposal(args))
    return str(raised.value)


def legacy_route(guard: Guard, args: dict[str, Any], decision_id: str) -> None:
    """A routed decision and its approval as an older version (lists read as absent) kept them."""
    content = {
        "actor": BOT.model_dump(mode="json"),
        "action": "refund",
        "tool": {"name": "refund_order", "arguments": args},
        "amount": {"amount": "80.00", "currency": "USD"},
        "customer_id": "c-1",
        "case_id": "case-1",
        "order_id": "o-2",
        "rationale": {"reason": None, "text": "", "claims": [], "precedents": []},
    }
    recorded = {**content, "idempotency_key": f"legacy-{decision_id}"}
    decision = guard.preview(proposal(arguments(amount="80.00"), key=f"legacy-{decision_id}"))
    decision = decision.model_copy(
        update={"id": decision_id, "proposal_digest": digest(content), "required_role": "tier1"}
    )
    with guard.store.transaction() as tx:
        tx.append(
            DecisionRecord(decision=decision, proposal=recorded, context={}),
            opens=ApprovalRow(
                id=decision.id,
                status="pending",
                action="refund",
                reason=None,
                required_role="tier1",
                actor_id=BOT.id,
                actor_role=BOT.role,
                customer_id="c-1",
                case_id="case-1",
                requested=Money.of("80.00", "USD"),
                approved=None,
                tool="refund_order",
                proposal=recorded,
                policy_version=decision.policy_version,
                opened_at=NOW,
                due_at=NOW.replace(year=NOW.year + 1),
                escalations=0,
            ),
        )


def test_dotted_paths_are_read_the_same_by_every_entry_point(guard, recording, store):
    args = arguments()
    decided = guard.decide(proposal(args, key="decide"))
    governed = Governor(guard, actor=BOT).decide(
        ToolCallInfo(tool="refund_order", arguments=args, call_id="governor")
    )
    routed = guard.decide(proposal(arguments(amount="80.00"), key="routed"))
    approved = guard.approvals.approve(
        routed.id, approver=TINA, note="ok", amount=Money.of("60.00", "USD")
    )

    assert decided.amount == governed.amount == Money.of("40.00", "USD")
    assert decided.outcome == governed.outcome
    # Decide, the governor, the route and its re-check all asked for the same records.
    assert recording.named == [("c-1", "case-1", "o-1")] * 4
    # The re-check wrote the approved amount where the mapping reads it, and nowhere else.
    [queued] = guard.executions.for_decision(routed.id)
    assert queued.arguments == arguments(amount="60.00")
    assert approved.amount == Money.of("60.00", "USD")
    # Replay reads the recorded calls through the same reader: nothing changes.
    report = replay(store, guard.pack)
    assert report.replayed == 3
    assert report.changes == ()


@pytest.mark.parametrize("args", list(SMUGGLED.values()), ids=list(SMUGGLED))
def test_lists_and_objects_get_the_same_answer_from_every_entry_point(guard, store, args):
    answer = the_readers_answer(guard, args)
    assert (
        "where an id belongs" in answer
        or "a list or an object" in answer
        or ("where an object with" in answer)
    )

    with pytest.raises(ProposalError) as decided:
        guard.decide(proposal(args))
    with pytest.raises(ProposalError) as governed:
        Governor(guard, actor=BOT).decide(ToolCallInfo(tool="refund_order", arguments=args))
    legacy_route(guard, args, "dec_legacy")
    with pytest.raises(StaleApproval) as rechecked:
        guard.approvals.approve("dec_legacy", approver=TINA, note="ok")
    report = replay(store, guard.pack)

    reason = answer.removeprefix("proposal: ")
    assert reason in str(decided.value)
    assert reason in str(governed.value)
    assert reason in str(rechecked.value)
    [change] = report.changes
    assert change.after.outcome == "error"
    assert reason in (change.after.detail or "")
